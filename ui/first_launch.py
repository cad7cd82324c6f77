"""First launch: an empty workspace gets the synthetic demo dataset, with a progress bar.

Skipped when `OLR_NO_AUTO_DEMO=1` (tests of the empty state), in a read-only workspace, or
once tried in this session. `OLR_DEMO_SIZE_PX` picks a smaller scene (tests, slow machines).
"""

from __future__ import annotations

import os

import streamlit as st

from olr import workspace
from olr.data.dataset import list_datasets
from ui import state
from ui.guard import show_exception
from ui.progress import ProgressBar

TRIED = "olr.demo_tried"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def ensure_demo() -> None:
    if st.session_state.get(TRIED) or _flag("OLR_NO_AUTO_DEMO") or workspace.is_readonly():
        return
    st.session_state[TRIED] = True
    if list_datasets():
        return
    from olr.data import demo_scene

    size = os.environ.get("OLR_DEMO_SIZE_PX")
    box = st.container(border=True)
    with box:
        st.subheader("Welcome to OLR Studio")
        st.write(
            "This workspace has no datasets yet, so the **synthetic demo scene** is being generated and "
            "prepared (a Cyprus-like landscape with planted structure; not real imagery). This happens once."
        )
        bar = ProgressBar("Preparing the demo dataset")
    try:
        demo_scene.ensure_demo_dataset(progress=bar.update, size_px=int(size) if size else None)
    except Exception as error:
        with box:
            show_exception(error, "Preparing the demo dataset")
        return
    box.empty()
    state.choose_dataset(demo_scene.DEMO_DATASET)
    state.flash("success", "The synthetic demo dataset is ready and selected in the sidebar.")
