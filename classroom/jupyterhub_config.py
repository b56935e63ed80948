"""JupyterHub for a class: local accounts, one server per student running as that student.

Started by classroom/start.sh (docs/instructor.md). Everything is read from the environment,
so the same file serves a real class and a rehearsal on a spare port:

  FTLAB_CLASS_ROOT        the class root made by classroom/install.sh (default /srv/ftlab-class)
  FTLAB_CLASS_IP / _PORT  where students connect (default all addresses, port 8000)
  FTLAB_CLASS_HUB_PORT    the hub's internal port (default 8081, on 127.0.0.1)
  FTLAB_CLASS_PROXY_API_PORT  the proxy's control port (default 8001, on 127.0.0.1)
  FTLAB_CLASS_GROUP       the Unix group whose members may log in (default ftlab-students)
  FTLAB_CLASS_USERS       more accounts allowed, comma-separated
  FTLAB_CLASS_ADMINS      hub admins, comma-separated (they may start and stop servers)
"""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)


def _classroom_module():
    """ftlab/classroom.py loaded by path: the hub needs its folders, not torch."""
    spec = importlib.util.find_spec("ftlab")
    path = Path(next(iter(spec.submodule_search_locations))) / "classroom.py"
    module_spec = importlib.util.spec_from_file_location("ftlab_classroom", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses look their module up there
    module_spec.loader.exec_module(module)
    return module


def _names(var):
    return {n.strip() for n in os.environ.get(var, "").split(",") if n.strip()}


classroom = _classroom_module()
root = classroom.ClassRoot(Path(os.environ.get("FTLAB_CLASS_ROOT", "/srv/ftlab-class")))
root.hub.mkdir(mode=0o700, exist_ok=True)

# -- where the hub listens and keeps its state ---------------------------------------------
c.JupyterHub.ip = os.environ.get("FTLAB_CLASS_IP", "")
c.JupyterHub.port = int(os.environ.get("FTLAB_CLASS_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("FTLAB_CLASS_HUB_PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{root.hub / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(root.hub / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops the students' servers

# -- the proxy: configurable-http-proxy from npm, installed beside the class's Python ------
proxy = root.venv / "share" / "ftlab-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [str(proxy) if proxy.exists()
                                   else shutil.which("configurable-http-proxy") or str(proxy)]
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{os.environ.get('FTLAB_CLASS_PROXY_API_PORT', '8001')}")
c.ConfigurableHTTPProxy.pid_file = str(root.hub / "proxy.pid")

# -- who may log in: local accounts (PAM) ----------------------------------------------------
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False
c.PAMAuthenticator.allowed_groups = _names("FTLAB_CLASS_GROUP") or set() \
    if "FTLAB_CLASS_GROUP" in os.environ else {"ftlab-students"}
c.Authenticator.allowed_users = _names("FTLAB_CLASS_USERS")
c.Authenticator.admin_users = _names("FTLAB_CLASS_ADMINS")

# -- each student's server: their own system user, the class's Python ----------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(root.python), "-m", "jupyterhub.singleuser"]
c.Spawner.notebook_dir = f"~/{classroom.NOTEBOOKS_IN_HOME}"
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 120  # a busy 2-core server needs a while to start one
c.Spawner.start_timeout = 120


def _before_start(spawner):
    """Runs folder and notebooks ready (as root), then the student's environment."""
    spawner.environment.update(classroom.prepare_student(root, spawner.user.name))


c.Spawner.pre_spawn_hook = _before_start
