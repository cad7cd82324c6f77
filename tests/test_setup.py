"""The README's first command as a user meets it: nothing to answer, no file watching, no TensorFlow noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from olr.workspace import REPO_ROOT

TF_NOISE = "cpu_feature_guard"  # TensorFlow's C++ start-up line about CPU instructions


def _import_tensorflow_after_olr(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", "import olr, tensorflow"],
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_olr_keeps_tensorflow_start_up_noise_out_unless_asked():
    assert TF_NOISE not in _import_tensorflow_after_olr()
    assert TF_NOISE in _import_tensorflow_after_olr(TF_CPP_MIN_LOG_LEVEL="0")  # the user's choice wins


def _server_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(argv) and str(port).encode() in argv:
            return int(proc.name)
    raise AssertionError(f"no streamlit process serves port {port}")


def _inotify_watches(pid: int) -> int:
    watches = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                watches += (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().count("inotify wd:")
        except OSError:
            continue
    return watches


def test_the_server_from_the_config_asks_nothing_and_watches_no_files(app_server, browser_workspace, page):
    """app_server starts `streamlit run app.py` with no flags of its own for these: .streamlit/config.toml
    has to make it headless (no e-mail prompt) and stop it watching the repository (.venv, data, models)."""
    page.goto(app_server)
    page.wait_for_selector('[data-testid="stAppViewContainer"]')
    pid = _server_pid(urlparse(app_server).port)
    assert _inotify_watches(pid) == 0
    log = (browser_workspace / "streamlit.log").read_text(errors="replace")
    assert "Email" not in log and "Inotify" not in log and TF_NOISE not in log
