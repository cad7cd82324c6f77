"""Choosing the run a result page shows, with the empty and unfinished states explained."""

from __future__ import annotations

import streamlit as st

from olr.analysis import run_data
from olr.errors import OLRError
from olr.runs import store
from ui import runs_panel, state
from ui.guard import show_exception


def selected_run(page: str):
    """The sidebar's run, or None after explaining what to do (no runs, none picked, failed, still training)."""
    everything = store.list_runs()
    if not everything:
        runs_panel.offer_demo_pipeline(page)
        return None
    run_id = state.run()
    if not run_id:
        st.info("Pick a run in the sidebar.", icon=":material/info:")
        return None
    try:
        run = store.load_run(run_id)
    except OLRError as error:
        show_exception(error)
        return None
    if run.problem:
        st.error(run.problem, icon=":material/error:")
        return None
    if run.state in store.FAILED_STATES:
        runs_panel.describe_failure(run)
        return None
    if run.is_live:
        st.info(
            f"Run {run.id} is still {run.state} ({runs_panel.progress_text(run)}); its results appear here when it "
            "finishes. Follow it on the Live page.",
            icon=":material/hourglass_top:",
        )
        return None
    try:
        run_data.check_results(run)
    except run_data.DatasetChanged as error:
        show_exception(error)
        return None
    return run
