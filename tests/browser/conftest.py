"""Servers and a browser for the real-browser tests: JupyterLab (which also serves
Notebook 7) and Voila on 127.0.0.1, driven by Playwright with Debian's chromium.

Each fixture stops exactly the process it started (by PID). Chromium is installed with
apt when missing and we are root; otherwise the tests skip with the reason. Never
``playwright install``: it downloads a browser, and there is no network for that here.
Set LAB_URL / VOILA_URL to reuse servers already running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).parent
COURSE = HERE.parents[1] / "notebooks"
BIN = Path(sys.executable).parent
NOTEBOOK = "panel.ipynb"
TOKEN = "ftlab-test"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("FTLAB_SHOTS", "/tmp/ftlab-shots"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # only the PID we started
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _ensure_chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing and we cannot apt-get "
                    "install it (not root). Install Debian's `chromium` package.")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(cmd, env=env, capture_output=True)
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"BROWSER TESTS SKIPPED: `apt-get install -y chromium` did not provide "
                    f"{CHROMIUM}.")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser_context():
    """A headless chromium (persistent profile in a temp dir: Playwright refuses
    --user-data-dir in args)."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="BROWSER TESTS SKIPPED: playwright not installed")
    exe = _ensure_chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="ftlab-chromium-"), executable_path=exe, headless=True,
            args=ARGS, viewport={"width": 1280, "height": 1100})
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    page.close()


def _server_env(tmp: Path) -> dict:
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp / "rt"),
               FTLAB_RUNS=str(tmp / "runs"), PYTHONUNBUFFERED="1")
    env.setdefault("FTLAB_CACHE", "/tmp/ftlab-cache")
    return env


def _jupyter_lab(root: Path, env: dict, tmp: Path):
    """JupyterLab serving ``root`` on loopback (autosave off: never rewrite a notebook);
    yields its URL and stops it."""
    port = _free_port()
    settings = tmp / "settings" / "@jupyterlab"
    for plugin, value in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "docmanager-extension/plugin": {"autosave": False},  # never rewrite the notebook
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = dict(env, JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "ws"))
    cmd = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--JupyterNotebookApp.expose_app_in_browser=True",
           f"--FileCheckpoints.root_dir={tmp / 'checkpoints'}"]  # none in the repo
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        t = time.time()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: see {tmp / 'lab.log'}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if time.time() - t > 90:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="session")
def lab_url():
    """JupyterLab on loopback; the same server serves Notebook 7 under /notebooks/."""
    if os.environ.get("LAB_URL"):
        yield os.environ["LAB_URL"]
        return
    tmp = Path(tempfile.mkdtemp(prefix="ftlab-lab-"))
    yield from _jupyter_lab(HERE, _server_env(tmp), tmp)


@pytest.fixture(scope="session")
def course_server():
    """Start JupyterLab on a copy of the course's notebooks and a given run cache:
    ``with course_server(runs) as url``. Stopped at the end of the session."""
    started = []

    @contextlib.contextmanager
    def start(runs: Path):
        tmp = Path(tempfile.mkdtemp(prefix="ftlab-course-"))
        shutil.copytree(COURSE, tmp / "notebooks")
        server = _jupyter_lab(tmp / "notebooks", dict(_server_env(tmp), FTLAB_RUNS=str(runs)),
                              tmp)
        started.append(server)
        yield next(server)

    yield start
    for server in started:
        server.close()  # runs its finally: the server stops


@pytest.fixture(scope="session")
def voila_url():
    """Voila serving the test notebook as an app (each page load runs it in a kernel)."""
    if os.environ.get("VOILA_URL"):
        yield os.environ["VOILA_URL"]
        return
    port, tmp = _free_port(), Path(tempfile.mkdtemp(prefix="ftlab-voila-"))
    cmd = [str(BIN / "voila"), NOTEBOOK, "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1"]
    log = open(tmp / "voila.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=HERE, env=_server_env(tmp), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        # probe the TCP port only: an HTTP GET of / would start (and leak) a kernel
        t = time.time()
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.time() - t > 90:
                    raise RuntimeError(f"voila did not start: see {tmp / 'voila.log'}") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(proc)  # also ends the kernels it started
        log.close()
