"""The server's upload limit checked against what this workspace allows, before any page renders.

Streamlit takes an upload at `/_stcore/upload_file/...` for any connected session, whether or not
a page shows an uploader, and keeps it in memory; it rejects a body above `server.maxUploadSize`
while it streams in (Content-Length first). That option can only be set at launch (flag,
`STREAMLIT_SERVER_MAX_UPLOAD_SIZE` or `.streamlit/config.toml`), so the app cannot lower it itself:
it refuses to serve when the launch left it above what the workspace allows (0 MB on a read-only
demo, `OLR_MAX_UPLOAD_MB` otherwise), with the launch to use.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import streamlit as st

from olr import workspace
from olr.data import uploads

# Seconds the refusal has to reach the visitor's browser before a read-only server stops.
_STOP_DELAY_S = 1.0


def allowed_upload_mb() -> int:
    """The largest upload this workspace takes: none on a read-only demo."""
    return 0 if workspace.is_readonly() else uploads.max_upload_mb()


def launch_problem(server_limit_mb: int) -> str | None:
    """One sentence when Streamlit's upload limit (MB) exceeds what the workspace allows, else None."""
    allowed = allowed_upload_mb()
    if server_limit_mb <= allowed:
        return None
    if workspace.is_readonly():
        return (
            f"This read-only demo was started with uploads open (server.maxUploadSize = {server_limit_mb} MB), "
            "so any visitor could fill its memory; start it with "
            "`OLR_READONLY=1 streamlit run app.py --server.maxUploadSize=0`."
        )
    return (
        f"Streamlit accepts uploads up to {server_limit_mb} MB (server.maxUploadSize) but OLR_MAX_UPLOAD_MB is "
        f"{allowed}; start the app with `streamlit run app.py --server.maxUploadSize={allowed}`."
    )


def refuse_unsafe_launch() -> None:
    """Show the launch problem and stop the script; a read-only server also shuts itself down.

    The page alone cannot close Streamlit's upload endpoint, so a read-only server that would take
    uploads stops (SIGTERM to its own process, Streamlit's ordinary shutdown). Outside a real
    server (AppTest, no HTTP headers) only the page is refused.
    """
    problem = launch_problem(int(st.get_option("server.maxUploadSize")))
    if problem is None:
        return
    print(f"OLR Studio: {problem}", file=sys.stderr, flush=True)
    st.error(problem)
    if workspace.is_readonly() and st.context.headers:
        threading.Timer(_STOP_DELAY_S, os.kill, (os.getpid(), signal.SIGTERM)).start()
    st.stop()
