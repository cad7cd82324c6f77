"""OLR Studio: `streamlit run app.py`.

The entry point only lays out navigation and the shared sidebar; each page in pages/ reads
from the `olr` library and renders. Errors never reach the browser as tracebacks.
"""

import streamlit as st

from ui import first_launch, server_limits, sidebar, state
from ui.guard import show_exception

st.set_page_config(layout="wide", page_title="OLR Studio", page_icon="🛰️")
server_limits.refuse_unsafe_launch()  # before anything renders: a launch that takes larger uploads than allowed

PAGES = {
    "Data": [
        st.Page("pages/datasets.py", title="Datasets", icon=":material/dataset:", default=True),
    ],
    "Training": [
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/live.py", title="Live", icon=":material/monitoring:"),
    ],
    "Results": [
        st.Page("pages/study.py", title="Study", icon=":material/summarize:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page("pages/correlations.py", title="Correlations & map", icon=":material/hub:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ],
}

page = st.navigation(PAGES)
try:
    first_launch.ensure_demo()
    sidebar.render(page.title)
except Exception as error:
    show_exception(error, "The sidebar")
state.show_flash()  # messages kept across the rerun that followed an action (launched, prepared, ...)
try:
    page.run()
except Exception as error:
    show_exception(error, f"The {page.title} page")
