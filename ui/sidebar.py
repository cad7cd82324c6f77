"""The shared sidebar: workspace, dataset picker, run picker(s); choices persist across pages."""

from __future__ import annotations

import streamlit as st

from olr import workspace
from olr.data.dataset import list_datasets
from olr.data.demo_scene import DEMO_DATASET
from olr.runs import store
from ui import state

# Which pages show which run pickers.
SINGLE_RUN_PAGES = ("Evaluate", "Correlations & map")
MULTI_RUN_PAGES = ("Live", "Compare")


def run_label(run) -> str:
    """How a run is named in pickers: id, kind, state."""
    return f"{run.id} · {run.kind} · {run.state}"


def render(page_title: str) -> None:
    bar = st.sidebar
    if not workspace.is_readonly():  # a shared demo does not tell visitors where it lives on the server
        bar.caption(f"Workspace: `{workspace.home()}`")
    else:
        bar.info("Read-only demo: browsing only, nothing can be prepared, launched or stopped.", icon=":material/lock:")

    names = list_datasets()
    if names:
        chosen = state.pick_one(
            bar,
            "Dataset",
            names,
            state.DATASET,
            default=DEMO_DATASET,
            help="The dataset the Datasets explorer and the Train form use.",
        )
        if chosen == DEMO_DATASET:
            bar.warning(
                "The demo scene is **synthetic**: a generated Cyprus-like landscape, "
                "not real imagery or real CORINE data.",
                icon=":material/science:",
            )
    else:
        state.choose_dataset(None)
        bar.caption("No datasets yet.")

    if page_title in SINGLE_RUN_PAGES or page_title in MULTI_RUN_PAGES:
        listing = [r for r in store.list_runs() if not r.is_study]  # studies have their own page
        ids = [r.id for r in listing]
        labels = {r.id: run_label(r) for r in listing}
        if page_title in SINGLE_RUN_PAGES:
            # Every run can be picked (a failed one shows why it failed); finished ones are the default.
            finished = [r for r in listing if r.state in store.USABLE_STATES]
            options = ids
            # With no choice yet, open each page on the kind of run it is made for.
            wanted = "siamese" if page_title == "Correlations & map" else "classifier"
            default = next((r.id for r in finished if r.kind == wanted), finished[0].id if finished else None)
            state.pick_one(
                bar,
                "Run",
                options,
                state.RUN,
                format_func=lambda i: labels.get(i, i),
                default=default,
                help="The run the Evaluate and Correlations pages show.",
            )
        else:
            active = [r.id for r in listing if r.is_live]
            state.pick_many(
                bar,
                "Runs",
                ids,
                state.RUNS,
                format_func=lambda i: labels.get(i, i),
                default=active or ids[:2],
                help="Runs whose curves the Live and Compare pages overlay.",
            )
