"""A shared demo takes no uploads: real `streamlit run app.py` servers sent forged upload requests.

A forger needs what any visitor gets: the XSRF cookie (from the health endpoint), a session (a
websocket that runs the script once, which is how a session learns its id) and a PUT to
`/_stcore/upload_file/<session>/<file>`. The server's memory is read from /proc/<pid>/status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import requests
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from olr.workspace import REPO_ROOT
from tests.fixtures.browser import free_port

READONLY_LAUNCH_HINT = "OLR_READONLY=1 streamlit run app.py --server.maxUploadSize=0"


class Server:
    def __init__(self, home, env: dict, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"streamlit-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
        command += ["--server.port", str(self.port), "--server.address", "127.0.0.1", *flags]
        self.proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, "OLR_HOME": str(home), "OLR_NO_AUTO_DEMO": "1", **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
            time.sleep(0.3)
        raise RuntimeError(f"streamlit did not start: {self.output()[-2000:]}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float:
        """Resident memory of the server process; 0 once it has exited."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except FileNotFoundError:
            return 0.0
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.fixture
def start_server(_isolated_workspace):
    servers = []

    def start(env: dict, *flags: str) -> Server:
        servers.append(Server(_isolated_workspace, env, *flags))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def open_session(server: Server):
    """A visitor's session: (XSRF cookie, session id, the open websocket), after one script run."""
    with requests.get(f"{server.url}/_stcore/health", timeout=5) as r:
        xsrf = r.cookies["_streamlit_xsrf"]
    ws = connect(
        f"ws://127.0.0.1:{server.port}/_stcore/stream",
        subprotocols=["streamlit", "xsrf"],
        additional_headers={"Cookie": f"_streamlit_xsrf={xsrf}", "Origin": server.url},
        max_size=None,
    )
    rerun = BackMsg()
    rerun.rerun_script.query_string = ""
    ws.send(rerun.SerializeToString())
    session_id = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = ForwardMsg()
        try:
            msg.ParseFromString(ws.recv(timeout=60))
        except ConnectionClosed:  # a server refusing to serve may close it first
            break
        if msg.WhichOneof("type") == "new_session":
            session_id = msg.new_session.initialize.session_id
        if msg.WhichOneof("type") == "script_finished":
            break
    assert session_id, "the server never started a session"
    return xsrf, session_id, ws


def forge_upload(server: Server, xsrf: str, session_id: str, megabytes: int) -> int | str:
    """PUT a file of `megabytes` MB as an uploader would; the HTTP status, or why it did not arrive."""
    try:
        r = requests.put(
            f"{server.url}/_stcore/upload_file/{session_id}/{uuid.uuid4()}",
            files={"file": ("scene.tif", os.urandom(megabytes * 1024 * 1024), "image/tiff")},
            headers={"X-Xsrftoken": xsrf},
            cookies={"_streamlit_xsrf": xsrf},
            timeout=60,
        )
    except requests.ConnectionError:
        return "connection refused"
    return r.status_code


def wait_stopped(server: Server, timeout: float = 30) -> bool:
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(timeout=timeout)
    return server.proc.poll() is not None


def test_readonly_demo_launched_with_uploads_open_stops_and_names_the_launch(start_server):
    server = start_server({"OLR_READONLY": "1"})  # the repository's config: maxUploadSize = 1024
    xsrf, session_id, ws = open_session(server)
    rss_before = server.rss_mb()
    stopped = wait_stopped(server)
    status = forge_upload(server, xsrf, session_id, 24)
    ws.close()
    assert stopped, f"a read-only server with uploads open kept serving (forged upload: {status})"
    assert status != 204 and server.rss_mb() < rss_before + 24
    assert READONLY_LAUNCH_HINT in server.output() and "Traceback" not in server.output()
    # the launch it names serves the demo and refuses every forged upload before it piles up
    documented = start_server({"OLR_READONLY": "1"}, "--server.maxUploadSize=0")
    xsrf, session_id, ws = open_session(documented)
    rss_before = documented.rss_mb()
    statuses = [forge_upload(documented, xsrf, session_id, 8) for _ in range(3)]
    ws.close()
    assert statuses == [413, 413, 413]
    assert documented.rss_mb() < rss_before + 8, "refused uploads still piled up in the server's memory"
    assert documented.proc.poll() is None, "the documented read-only launch should keep serving"


def test_upload_cap_differing_from_streamlits_limit_is_refused_with_the_launch(start_server):
    server = start_server({"OLR_MAX_UPLOAD_MB": "2"})
    xsrf, session_id, ws = open_session(server)
    ws.close()
    assert "streamlit run app.py --server.maxUploadSize=2" in server.output()
    matched = start_server({"OLR_MAX_UPLOAD_MB": "2"}, "--server.maxUploadSize=2")
    xsrf, session_id, ws = open_session(matched)
    rss_before = matched.rss_mb()
    above, below = forge_upload(matched, xsrf, session_id, 8), forge_upload(matched, xsrf, session_id, 1)
    ws.close()
    assert (above, below) == (413, 204), "the cap is enforced by the server and uploads below it still work"
    assert matched.rss_mb() < rss_before + 8
    assert "maxUploadSize" not in matched.output()
