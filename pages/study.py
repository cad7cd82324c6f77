"""Study: run the whole study (`python -m olr study`) on a dataset, follow it stage by stage, read its report."""

from __future__ import annotations

import streamlit as st

from olr.runs.store import RunLayout
from olr.runs.studies import list_studies
from ui import study
from ui.entry import ensure_entrypoint

ensure_entrypoint()
st.title("Study")
st.caption(
    "One study is the whole recipe on one dataset: a classifier, a Siamese network on it, their evaluation with "
    "intervals and baselines, the label correlations with their references, and a report a supervisor can read "
    f"without the app (`{RunLayout.REPORT}`, one self-contained file). It runs in the background and keeps going "
    "if you close the browser."
)

study.launch_form()
studies = list_studies()
shown = study.study_picker(studies)
if shown:
    study.show_study(shown)
st.subheader("Studies")
study.studies_list(studies)
