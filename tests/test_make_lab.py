"""`make lab`, the README's first command, serves the notebooks.

Started exactly as a learner types it, with only the port and the browser choice overridden
through the Makefile's own variables, as whoever runs the tests: root on CI, in containers
and on the course machines, where Jupyter refuses to start without --allow-root.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "00_start_here.ipynb"
TIMEOUT_S = 60
# What Jupyter prints: "http://127.0.0.1:8888/lab?token=…" (and the same on localhost).
URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(\d+)/lab\?token=(\w+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user_env() -> dict:
    """The environment a user's shell gives `make`: without the variables of the outer
    `make test` that runs this suite (its command-line overrides, jobserver)."""
    env = dict(os.environ)
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(name, None)
    return env


def _gone(proc: subprocess.Popen, wait_s: float) -> bool:
    """True once no process is left in the group of `proc` (waits up to wait_s)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        proc.poll()  # reap make, or it stays in the group as a zombie
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen) -> None:
    """Stop make and the jupyter it spawned: the process group we started (its id is make's
    pid, start_new_session=True). SIGTERM lets Jupyter shut down cleanly; SIGKILL if not."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if _gone(proc, wait_s):
            break
    proc.wait(10)


def _get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_make_lab_serves_the_start_here_notebook():
    # `make lab` depends on the install stamp: if it is stale, make would reinstall first
    # (minutes). `make test` builds it before running this suite, so here it must be fresh.
    stale = subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT, env=_user_env(),
                           capture_output=True)
    if stale.returncode != 0:
        pytest.fail(".venv/.installed is missing or older than pyproject.toml or "
                    "scripts/install.sh: run `make install` first (this test must not install)")

    port = _free_port()
    cmd = ["make", "lab", f"LAB_PORT={port}", "LAB_OPEN_BROWSER=no"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_user_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        deadline = started + TIMEOUT_S
        match = None
        while match is None:
            match = URL.search("".join(lines))
            if match:
                break
            assert proc.poll() is None, (
                f"`{' '.join(cmd)}` exited ({proc.returncode}) before printing a URL:\n"
                + "".join(lines))
            assert time.monotonic() < deadline, (
                f"no URL with a token within {TIMEOUT_S} s:\n" + "".join(lines))
            time.sleep(0.1)
        url_s = time.monotonic() - started
        assert int(match.group(1)) == port, "".join(lines)
        token = match.group(2)

        api = f"http://127.0.0.1:{port}/api/contents/{NOTEBOOK}?content=0"
        while True:
            try:
                status, body = _get(api, token)
                break
            except OSError:  # not answering yet
                assert time.monotonic() < deadline, "".join(lines)
                time.sleep(0.2)
        assert status == 200, f"{api} -> {status}: {body[:300]!r}\n" + "".join(lines)
        model = json.loads(body)
        assert (model["name"], model["type"]) == (NOTEBOOK, "notebook")
        # without the token the server refuses: the printed token is what lets a user in
        assert _get(api, "not-the-token")[0] == 403
        if os.geteuid() == 0:
            assert "running as root, so Jupyter gets --allow-root" in "".join(lines)
    finally:
        _stop(proc)
        reader.join(5)
    assert _gone(proc, 0.1), "processes of `make lab` left running"
    print(f"`make lab` printed its URL after {url_s:.1f} s")


def test_binder_installs_what_make_installs():
    """Binder (repo2docker runs binder/postBuild) gets the install `make` does: the same
    script with the same extras, then the same model conversion, on a Python the project
    supports."""
    install = re.compile(r"^\s*(?:bash\s+)?scripts/install\.sh[ \t]+\S+[ \t]+(\S+)", re.M)
    make_rule = (ROOT / "Makefile").read_text()
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert install.findall(post_build) == install.findall(make_rule) == ["lab,test,class,track"]
    assert "-m ftlab prepare" in make_rule and "-m ftlab prepare" in post_build
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK)  # repo2docker runs it as is

    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert match, f"binder/runtime.txt: {runtime!r} is not python-X.Y"
    requires = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"',
                         (ROOT / "pyproject.toml").read_text())
    assert tuple(map(int, match.groups())) >= tuple(map(int, requires.groups()))
