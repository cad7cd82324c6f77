"""Every page runs inside app.py's `st.navigation`, never as a stand-alone script.

Streamlit treats a folder named `pages/` beside the entry point as a legacy multipage app
until `st.navigation` has run once in the server process (and at the start of every AppTest
run). A request for a page then executes the page file alone: no sidebar, no shared state,
the legacy page list (e.g. a deep link such as `/live` opened first after a server start).
Each page calls `ensure_entrypoint()` first; in that case it switches legacy mode off and
runs app.py in its place, whose navigation renders the same page, then ends the legacy run.
Running it in place (not `st.rerun`) keeps the click that triggered the run.

Streamlit 1.67 has no public switch for legacy mode (no config option; `st.navigation` clears
it only once it has run), so this module is the one place that touches the private
`PagesManager.uses_pages_directory`; tests/test_streamlit_contract.py fails with a sentence
when Streamlit renames or removes it.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

ENTRYPOINT = Path(__file__).resolve().parent.parent / "app.py"


def ensure_entrypoint() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(ENTRYPOINT), run_name="__main__")
        st.stop()
