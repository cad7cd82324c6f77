"""The app served by `streamlit run app.py` on a workspace, and a page's run awaited in a browser: shared by
`bench map-open` (`ui.map_open_times`) and the browser tests (tests/fixtures/browser.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from olr.errors import OLRError
from olr.workspace import REPO_ROOT

#: the run is over: the app root's run state (the attributes Streamlit's own browser tests wait on) says
#: connected and not running, no element is still a skeleton and no running indicator shows
IDLE_JS = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.dataset.testConnectionState === 'CONNECTED' && app.dataset.testScriptState === 'notRunning' &&
    !document.querySelector('[data-testid="stSkeleton"], [data-testid="stStatusWidget"]');
}
"""
APP_STATE_JS = """
() => { const app = document.querySelector('[data-testid="stApp"]'); return app ? {...app.dataset} : null; }
"""


def settle(page, timeout: float = 90.0) -> None:
    """Wait until Streamlit has finished the run: idle (IDLE_JS) at three polls in a row, since an action's
    rerun is requested a moment after the action and a page can rerun itself once after its first run."""
    deadline = time.monotonic() + timeout
    quiet = 0
    time.sleep(0.2)
    while time.monotonic() < deadline:
        quiet = quiet + 1 if page.evaluate(IDLE_JS) else 0
        if quiet >= 3:
            return
        time.sleep(0.15)
    raise OLRError(f"The page did not finish rendering within {timeout:g} s (app state {page.evaluate(APP_STATE_JS)}).")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(home: Path, log: Path):
    """The base URL of `streamlit run app.py` serving workspace `home`; stopped on leaving."""
    port = free_port()
    env = dict(os.environ, OLR_HOME=str(home), OLR_NO_AUTO_DEMO="1", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the app keeps TensorFlow's start-up noise out by itself
    with open(log, "wb") as out:
        server = ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", *server],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise OLRError(f"The app did not start; its log: {log.read_text()[-1000:]}")
                time.sleep(0.3)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
