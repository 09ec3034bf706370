"""`kedro jupyter lab` (what `make notebook` runs) serves notebooks/compare_runs.ipynb, and its default kernel,
"Kedro (adaptseg)", starts with the Kedro extension loaded (`context`, `catalog`, `session`, `pipelines`).

JupyterLab is the optional [notebook] extra (`make notebook` installs it): without it the test is skipped.
The server runs headless on a free loopback port, with Jupyter's and IPython's folders in a temporary directory
(the kernel spec kedro installs never reaches the user's ~/.local/share/jupyter), and is stopped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytest.importorskip(
    "jupyterlab",
    reason="JupyterLab is not installed: it is the optional [notebook] extra; `make notebook` installs it "
    "(or `.venv/bin/pip install -c requirements.lock -e '.[notebook]'`)",
)

KEDRO = Path(sys.executable).parent / "kedro"
NOTEBOOK = "notebooks/compare_runs.ipynb"
KERNEL = "kedro_adaptseg"  # kedro names it kedro_<package_name>
TOKEN = uuid.uuid4().hex
PROBE = (
    "import json, os\n"
    "from kedro.framework.context import KedroContext\n"
    "from kedro.framework.session import KedroSession\n"
    "from kedro.io import DataCatalog\n"
    "print(json.dumps({'context': isinstance(context, KedroContext), 'catalog': isinstance(catalog, DataCatalog),\n"
    "                  'session': isinstance(session, KedroSession), 'pipelines': sorted(pipelines),\n"
    "                  'pid': os.getpid(), 'cwd': os.getcwd()}))\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    def __init__(self, port: int, process: subprocess.Popen, log: Path):
        self.base, self.process, self.log = f"http://127.0.0.1:{port}", process, log

    def request(self, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()

    def json(self, path: str, method: str = "GET", body: dict | None = None):
        return json.loads(self.request(path, method, body)[1])

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the process group that ``process`` leads, each given 10 s to end it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                process.wait(timeout=0.2)  # reaps kedro itself
                os.killpg(process.pid, 0)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture
def lab(tmp_path):
    """`kedro jupyter lab` on the notebook, as `make notebook` starts it, but headless on a free loopback port."""
    home = tmp_path / "jupyter"
    env = {**os.environ, "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    port = free_port()
    log = tmp_path / "lab.log"
    command = [str(KEDRO), "jupyter", "lab", NOTEBOOK, "--ServerApp.root_dir=.",  # as `make notebook` runs it
               "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={TOKEN}"]
    if os.geteuid() == 0:  # containers: Jupyter refuses root without it (the Makefile adds it the same way)
        command.append("--allow-root")
    with log.open("wb") as out:  # its own session: kedro and the jupyter server it starts are stopped together
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Lab(port, process, log)
    server.kernel_pids = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"`kedro jupyter lab` exited ({process.returncode}):\n{server.log_tail()}"
            assert time.monotonic() < deadline, f"no Jupyter server on port {port} after 60 s:\n{server.log_tail()}"
            try:
                if server.request("/api/status")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        yield server
    finally:
        try:  # a clean stop shuts its kernels down too
            server.request("/api/shutdown", "POST")
            process.wait(timeout=15)
        except Exception:
            pass
        stop_group(process)  # whatever is left of kedro and its jupyter server
        for pid in server.kernel_pids:  # kernels run in sessions of their own; only if it is still that kernel
            try:
                if b"ipykernel_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


async def execute(lab: Lab, kernel_id: str, code: str, timeout: float) -> tuple[str, str, list]:
    """Run ``code`` on the kernel over the server's websocket; return (status, stdout, other outputs)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    session = uuid.uuid4().hex
    url = f"{lab.base.replace('http', 'ws', 1)}/api/kernels/{kernel_id}/channels?session_id={session}"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}, connect_timeout=30))
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request",
              "version": "5.3", "date": ""}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    await ws.write_message(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                                       "channel": "shell", "buffers": []}))
    stdout, errors, status, idle = [], [], None, False
    deadline = time.monotonic() + timeout
    while status is None or not idle:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no reply from the kernel in {timeout} s; stdout so far: {''.join(stdout)!r}")
        raw = await asyncio.wait_for(ws.read_message(), left)
        if raw is None:
            raise ConnectionError("the kernel's websocket closed")
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream" and msg["content"]["name"] == "stdout":
            stdout.append(msg["content"]["text"])
        elif kind == "error":
            errors.append(msg["content"])
        elif kind in ("display_data", "execute_result"):  # kedro's rich tracebacks arrive as display_data
            errors.append(msg["content"].get("data", {}).get("text/plain", ""))
        elif kind == "execute_reply":
            status = msg["content"]["status"]
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            idle = True
    ws.close()
    return status, "".join(stdout), errors


@pytest.mark.slow
def test_kedro_jupyter_lab_serves_the_notebook_with_the_kedro_kernel(lab):
    # kedro installed its kernel (this interpreter plus the kedro.ipython extension) and made it the default
    specs = lab.json("/api/kernelspecs")
    assert specs["default"] == KERNEL, specs["default"]
    argv = specs["kernelspecs"][KERNEL]["spec"]["argv"]
    assert argv[0] == sys.executable and argv[-2:] == ["--ext", "kedro.ipython"], argv

    # the notebook is listed and JupyterLab's page for it is served
    listing = lab.json("/api/contents/notebooks?content=1")
    assert {"name": "compare_runs.ipynb", "type": "notebook"} in [
        {"name": item["name"], "type": item["type"]} for item in listing["content"]
    ], listing
    status, page = lab.request(f"/lab/tree/{NOTEBOOK}")
    assert status == 200 and b"jupyter-config-data" in page

    # a session on the notebook with the Kedro kernel: the extension gives context, catalog, session, pipelines
    session = lab.json("/api/sessions", "POST",
                       {"path": NOTEBOOK, "type": "notebook", "name": "compare_runs.ipynb", "kernel": {"name": KERNEL}})
    kernel_id = session["kernel"]["id"]
    try:
        status, stdout, errors = asyncio.run(execute(lab, kernel_id, PROBE, timeout=120))
        assert status == "ok" and not errors, (status, errors, stdout, lab.log_tail())
        found = json.loads(stdout.strip().splitlines()[-1])
        lab.kernel_pids.append(found["pid"])
        assert found["context"] and found["catalog"] and found["session"], found
        assert {"__default__", "adaptation", "evaluation", "reporting"} <= set(found["pipelines"])
        assert Path(found["cwd"]) == PROJECT_ROOT / "notebooks"  # started beside the notebook, as Lab does
    finally:
        try:
            lab.request(f"/api/sessions/{session['id']}", "DELETE")
        except OSError:
            pass
