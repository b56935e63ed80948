"""A class on one server: the hub starts two students' servers as their own users; each
trains, neither reads the other's runs, neither writes the shared cache, both read it.

Needs root (to create the two accounts, removed afterwards); skips where accounts cannot be
created. The class root is laid out as ``classroom/install.sh`` makes it, from this install by
hard links (seconds, no download): its own venv on a Python every account can run, ftlab
copied in (not editable), the shared cache sealed by ``ftlab.classroom.seal``.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import requests

import ftlab
from ftlab import classroom
from ftlab.models import cache_dir, tiny_model_dir

REPO = Path(__file__).resolve().parents[1]
HUB_CONFIG = REPO / "classroom" / "jupyterhub_config.py"
TRAIN_CELL = """
import json, os, ftlab
from ftlab.engine import train
from ftlab.models import tiny_model_dir
cfg = ftlab.RunConfig(model="tiny", preset="cpu").replace(
    size=20, steps=2, batch_size=4, eval_every=2, **{"eval.samples": 0})
run = train(cfg, progress=False)
print(json.dumps({"run": str(run.path), "status": run.status, "model": str(tiny_model_dir()),
                  "uid": os.getuid()}))
"""
PROBE_CELL = """
import json, os
out = dict()
def attempt(name, fn):
    try:
        fn()
        out[name] = "allowed"
    except PermissionError:
        out[name] = "denied"
attempt("list_other_runs", lambda: os.listdir({other_runs!r}))
attempt("read_other_run", lambda: open({other_run!r} + "/config.json").read())
attempt("list_all_runs", lambda: os.listdir({all_runs!r}))
attempt("write_cache", lambda: open({cache!r} + "/mine", "w").write("x"))
attempt("write_model", lambda: open({cache!r} + "/tiny-llama/config.json", "a").write(" "))
attempt("read_model", lambda: open({cache!r} + "/tiny-llama/config.json").read())
os.symlink({other_runs!r}, {link!r})  # in the server's root folder: its contents API follows it
print(json.dumps(out))
"""


# -- the machine: accounts, an interpreter every account can run -------------------------------
def _can_create_users() -> str | None:
    """Why accounts cannot be created here, or None."""
    if os.geteuid() != 0:
        return "creating the students' accounts needs root"
    if not (shutil.which("useradd") and shutil.which("userdel") and shutil.which("chpasswd")):
        return "no useradd/userdel/chpasswd on this machine"
    return None


def _others_can_run(path: Path) -> bool:
    """Whether an account other than root can execute ``path`` (every folder above: o+x)."""
    path = path.resolve()
    return (path.stat().st_mode & stat.S_IXOTH != 0
            and all(p.stat().st_mode & stat.S_IXOTH for p in path.parents))


def _shared_python() -> Path:
    """This Python's version, where every account can run it (``CLASS_PYTHON`` of install.sh)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys._base_executable), Path("/usr/bin") / version,
                      Path("/usr/local/bin") / version):
        if candidate.exists() and _others_can_run(candidate):
            return candidate.resolve()
    pytest.fail(f"no {version} that other accounts can run (tried this one, /usr/bin, "
                "/usr/local/bin): a class install needs one (classroom/install.sh, CLASS_PYTHON)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the class root --------------------------------------------------------------------------
def _class_venv(target: Path) -> None:
    """This venv hard-linked (no copy of its 2 GB), on a shared Python, with ftlab copied in."""
    subprocess.run(["cp", "-al", sys.prefix, str(target)], check=True)
    python = _shared_python()
    for name in ("python", "python3", f"python{sys.version_info.major}.{sys.version_info.minor}"):
        (target / "bin" / name).unlink(missing_ok=True)
    (target / "bin" / "python3").symlink_to(python)
    (target / "bin" / "python").symlink_to("python3")
    cfg = (target / "pyvenv.cfg").read_text().splitlines()
    cfg = [f"home = {python.parent}" if line.startswith("home") else line for line in cfg]
    (target / "pyvenv.cfg").unlink()  # a link to the original: replaced, not edited
    (target / "pyvenv.cfg").write_text("\n".join(cfg) + "\n")
    site = target / Path(sysconfig.get_paths()["purelib"]).relative_to(sys.prefix)
    for f in site.glob("__editable__*ftlab*"):
        f.unlink()
    shutil.copytree(Path(ftlab.__file__).parent, site / "ftlab",
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)


@pytest.fixture(scope="module")
def class_root():
    why = _can_create_users()
    if why:
        pytest.skip(why)
    path = Path(tempfile.mkdtemp(prefix="ftlab-class-", dir="/tmp"))
    path.chmod(0o755)
    root = classroom.ClassRoot(path)
    try:
        _class_venv(root.venv)
        tiny_model_dir()  # in this install's cache (no conversion when it is there already)
        classroom.prepare_cache(root, models=("tiny",), from_cache=cache_dir(), scores=False)
        (root.notebooks).mkdir()
        yield root
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def students(class_root):
    """Two accounts with passwords, deleted (with their homes) afterwards."""
    tag = secrets.token_hex(3)
    names = [f"ftlabt{tag}a", f"ftlabt{tag}b"]
    made = []
    try:
        for name in names:
            r = subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], capture_output=True,
                               text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot create accounts here: useradd: {r.stderr.strip()}")
            made.append(name)
        passwords = {n: secrets.token_urlsafe(12) for n in names}
        subprocess.run(["chpasswd"], input="".join(f"{n}:{p}\n" for n, p in passwords.items()),
                       text=True, check=True)
        yield passwords
    finally:
        for name in made:
            subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


# -- the hub -----------------------------------------------------------------------------------
class Hub:
    """One JupyterHub process and everything it started, stopped by PID."""

    def __init__(self, root: classroom.ClassRoot, users: list[str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "FTLAB_CLASS_ROOT": str(root.path), "FTLAB_CLASS_IP": "127.0.0.1",
               "FTLAB_CLASS_PORT": str(self.port), "FTLAB_CLASS_HUB_PORT": str(_free_port()),
               "FTLAB_CLASS_PROXY_API_PORT": str(_free_port()),
               "FTLAB_CLASS_USERS": ",".join(users), "FTLAB_CLASS_GROUP": ""}
        for var in ("FTLAB_CACHE", "FTLAB_RUNS", "PYTHONPATH"):  # the class's own, not ours
            env.pop(var, None)
        self.log = root.path / "hub.log"
        root.hub.mkdir(mode=0o700, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(root.python), "-m", "jupyterhub", "-f",
                                          str(HUB_CONFIG)], cwd=root.hub, env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.started: dict[int, float] = {}  # pid -> create time, of every process under it
        self.wait_for(lambda: requests.get(f"{self.url}/hub/api/", timeout=2).ok, 90, "the hub")

    def wait_for(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"the hub exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if ready():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        pytest.fail(f"{what} not ready in {timeout} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def remember_children(self) -> None:
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                self.started[p.pid] = p.create_time()
            except psutil.Error:
                pass

    def stop(self) -> None:
        self.remember_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid, created in self.started.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created:
                    p.terminate()
                    p.wait(10)
            except psutil.TimeoutExpired:
                p.kill()
            except psutil.Error:
                pass


class Student:
    """A student as the hub sees them: logged in through the hub's API, with a server."""

    def __init__(self, hub: Hub, name: str, password: str) -> None:
        self.hub, self.name = hub, name
        r = requests.post(f"{hub.url}/hub/api/users/{name}/tokens", timeout=30,
                          json={"auth": {"username": name, "password": password}})
        assert r.status_code == 201, f"login of {name}: {r.status_code} {r.text}\n{hub.tail()}"
        self.headers = {"Authorization": f"token {r.json()['token']}"}
        self.server = f"{hub.url}/user/{name}"

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, f"{self.hub.url}/hub/api{path}", headers=self.headers,
                                timeout=30, **kw)

    def start_server(self) -> None:
        r = self.api("POST", f"/users/{self.name}/server")
        assert r.status_code in (201, 202), f"{r.status_code} {r.text}"
        self.hub.wait_for(lambda: self.api("GET", f"/users/{self.name}").json()
                          ["servers"].get("", {}).get("ready"), 150, f"{self.name}'s server")

    def stop_server(self) -> None:
        self.api("DELETE", f"/users/{self.name}/server")

    def contents(self, path: str) -> requests.Response:
        return requests.get(f"{self.server}/api/contents/{path}", headers=self.headers,
                            timeout=30)

    def run_cell(self, code: str, timeout: float = 240) -> str:
        """Run ``code`` in a new kernel of this student's server; its printed output."""
        import websocket

        r = requests.post(f"{self.server}/api/kernels", headers=self.headers, timeout=60, json={})
        assert r.status_code == 201, f"{r.status_code} {r.text}"
        kernel = r.json()["id"]
        self.hub.remember_children()
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.hub.port}/user/{self.name}/api/kernels/{kernel}/channels",
            header=[f"Authorization: {self.headers['Authorization']}"], timeout=timeout)
        try:
            msg_id = secrets.token_hex(8)
            ws.send(json.dumps({"channel": "shell", "header": {
                "msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                "session": secrets.token_hex(8), "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "content": {
                    "code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False}}))
            out, error = [], None
            while True:
                m = json.loads(ws.recv())
                if m.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = m["header"]["msg_type"]
                if kind == "stream" and m["content"]["name"] == "stdout":
                    out.append(m["content"]["text"])
                elif kind == "error":
                    error = "\n".join(m["content"]["traceback"])
                elif kind == "status" and m["content"]["execution_state"] == "idle":
                    break
        finally:
            ws.close()
            requests.delete(f"{self.server}/api/kernels/{kernel}", headers=self.headers,
                            timeout=30)
        assert error is None, error
        return "".join(out)


def _tree(folder: Path) -> dict[str, tuple]:
    """Every path under a folder with its owner, mode, size and time: any write shows."""
    return {str(p.relative_to(folder)): (s.st_uid, s.st_mode, s.st_size, s.st_mtime_ns)
            for p in [folder, *folder.rglob("*")] for s in [p.lstat()]}


# -- the test ----------------------------------------------------------------------------------
def test_two_students_train_privately_on_one_shared_read_only_cache(class_root, students):
    root = class_root
    a, b = list(students)
    cache_before = _tree(root.cache)
    hub = Hub(root, [a, b])
    try:
        people = {n: Student(hub, n, p) for n, p in students.items()}
        for s in people.values():
            s.start_server()
        hub.remember_children()
        trained = {n: json.loads(s.run_cell(TRAIN_CELL).strip().splitlines()[-1])
                   for n, s in people.items()}

        for name, t in trained.items():  # each run is in the student's folder, and theirs
            uid = pwd.getpwnam(name).pw_uid
            run = Path(t["run"])
            assert t["status"] == "completed" and t["uid"] == uid
            assert run.parent == root.runs_of(name)
            assert run.stat().st_uid == uid and root.runs_of(name).stat().st_uid == uid
            assert stat.S_IMODE(root.runs_of(name).stat().st_mode) & 0o007 == 0
            assert Path(t["model"]) == root.cache / "tiny-llama"  # read from the shared cache

        def probe(me: str, other: str) -> dict:
            cell = PROBE_CELL.format(other_runs=str(root.runs_of(other)),
                                     other_run=trained[other]["run"], all_runs=str(root.runs),
                                     cache=str(root.cache), link=str(
                                         Path(pwd.getpwnam(me).pw_dir) / "ftlab" / "peek"))
            return json.loads(people[me].run_cell(cell).strip().splitlines()[-1])

        seen = probe(a, b)
        assert seen == {"list_other_runs": "denied", "read_other_run": "denied",
                        "list_all_runs": "denied", "write_cache": "denied",
                        "write_model": "denied", "read_model": "allowed"}
        # B's runs through A's own server: jupyter_server answers a folder its user may not
        # read as one that does not exist (jupyter_core's is_hidden), so 404, and nothing of
        # B's shows; through the same kind of link, each sees their own runs.
        peek = people[a].contents("peek")
        assert peek.status_code in (403, 404), peek.text
        assert Path(trained[b]["run"]).name not in peek.text
        for name, s in people.items():
            own = s.contents("runs")
            assert own.status_code == 200, own.text
            assert [c["name"] for c in own.json()["content"]] == [Path(trained[name]["run"]).name]
        assert probe(b, a) == seen  # and the same the other way round
        assert _tree(root.cache) == cache_before  # nobody converted or wrote anything there

        rows = classroom.ClassView(root).rows  # the instructor's view: both students' runs
        assert sorted((r["student"], r["run"]) for r in rows) == sorted(
            (n, Path(t["run"]).name) for n, t in trained.items())
        assert all(r["status"] == "completed" and r["outlier"] == "" for r in rows)
        for s in people.values():
            s.stop_server()
    finally:
        hub.stop()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).create_time() == c
                   for p, c in hub.started.items())


def test_an_outlier_is_a_run_far_from_the_others_of_its_config():
    rows = [{"hash": "h", "status": "completed", "val_loss": v} for v in (1.0, 1.02, 0.98, 3.0)]
    rows.append({"hash": "h", "status": "failed", "val_loss": None})
    flags = [r["outlier"] for r in classroom.flag_outliers(rows)]
    assert flags[:3] == ["", "", ""] and flags[3].startswith("val_loss 3")
    assert flags[4] == "status failed"
