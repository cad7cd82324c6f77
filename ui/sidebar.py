"""The shared sidebar: workspace, search, dataset picker, run picker(s); choices persist across pages.

Runs and datasets are shown by their titles (`olr.runs.annotations`: the name given to them, else a readable
default), never by an id cut to a common prefix. The search box and tag filter narrow every picker; a search
that matches nothing leaves the current choice as it is and says so.
"""

from __future__ import annotations

import streamlit as st

from olr import workspace
from olr.data.dataset import list_datasets
from olr.data.demo_scene import DEMO_DATASET
from olr.runs import annotations, store
from ui import annotate, state
from ui.text import plain

# Which pages show which run pickers.
SINGLE_RUN_PAGES = ("Train", "Evaluate", "Correlations & map")
MULTI_RUN_PAGES = ("Live", "Compare")


def dataset_label(name: str) -> str:
    """A dataset in the picker: its title, and its folder name when the title differs."""
    title = annotations.dataset_title(name)
    return title if title == name else f"{title} ({name})"


def search_box(bar, runs: list[store.Run], datasets: list[str]) -> None:
    """The search words and, when any run or dataset has tags, the tag filter."""
    bar.text_input(
        "Search runs and datasets",
        key=annotate.SEARCH,
        placeholder="name, notes, tag, id, kind …",
        icon=":material/search:",
        help="Every word must occur in a run's or dataset's name, notes, tags, id, kind or dataset.",
    )
    tags = annotations.tags_in_use([r.path for r in runs] + [workspace.dataset_path(d) for d in datasets])
    if tags or annotate.search_tags():
        chosen = [t for t in annotate.search_tags() if t in tags]
        if chosen != annotate.search_tags():
            st.session_state[annotate.SEARCH_TAGS] = chosen  # a tag that no longer exists is dropped
        bar.multiselect("Tags", tags, key=annotate.SEARCH_TAGS, placeholder="any tag")


def _filtering() -> bool:
    return bool(annotate.search_query().strip() or annotate.search_tags())


def resync(key: str, options: list[str], labels: dict[str, str], default: str | None = None) -> None:
    """Make the browser show a picker's choice as it is now, before `state.pick_one`/`pick_many` draw it.

    Streamlit goes on showing the label it last sent for a keyed picker unless the widget's value is set
    again: a run renamed a moment ago would keep its old name, a deleted one would stay shown though another
    is picked. So when a chosen value's label changed, the value is given to the widget again; when it
    vanished, the picker's fallback (the stored choice, else `default`, else the first, as `pick_one` falls
    back) is given instead."""
    widget = state._widget_key(key)
    before = st.session_state.get(f"{key}.labels") or {}
    st.session_state[f"{key}.labels"] = labels
    value = st.session_state.get(widget)
    if value is None or not options:
        return
    if isinstance(value, list):
        if any(before.get(v, labels.get(v)) != labels.get(v) for v in value):
            st.session_state[widget] = [v for v in value if v in options]
    elif value not in options:
        current = st.session_state.get(key)
        st.session_state[widget] = current if current in options else default if default in options else options[0]
    elif before.get(value, labels[value]) != labels[value]:
        st.session_state[widget] = value


def render(page_title: str) -> None:
    bar = st.sidebar
    if not workspace.is_readonly():  # a shared demo does not tell visitors where it lives on the server
        bar.caption(f"Workspace: `{workspace.home()}`")
    else:
        bar.info("Read-only demo: browsing only, nothing can be prepared, launched or stopped.", icon=":material/lock:")

    names = list_datasets()
    listing = [r for r in store.list_runs() if not r.is_study]  # studies have their own page
    search_box(bar, listing, names)
    query, tags = annotate.search_query(), annotate.search_tags()
    if names:
        found = [n for n in names if annotations.dataset_matches(n, query, tags)] if _filtering() else names
        if found:
            resync(state.DATASET, found, {n: dataset_label(n) for n in found}, DEMO_DATASET)
            chosen = state.pick_one(
                bar,
                "Dataset",
                found,
                state.DATASET,
                format_func=dataset_label,
                default=DEMO_DATASET,
                help="The dataset the Datasets explorer and the Train form use.",
            )
        else:
            chosen = state.dataset()
            bar.caption(f"No dataset matches the search; the dataset stays **{plain(chosen or 'none')}**.")
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
        run_pickers(bar, page_title, listing)


def run_pickers(bar, page_title: str, listing: list[store.Run]) -> None:
    """The run picker of a single-run page (with its "About this run") or the runs picker of a multi-run page,
    narrowed by the search."""
    titles = annotations.run_titles(listing)
    labels = {r.id: annotate.run_label(r, titles[r.id]) for r in listing}
    found = [r for r in listing if annotations.run_matches(r, annotate.search_query(), annotate.search_tags())]
    if _filtering():
        bar.caption(f"{len(found)} of {len(listing)} runs match the search.")
    if page_title in SINGLE_RUN_PAGES:
        if not found:
            if listing:
                bar.caption("No run matches the search; the run shown stays as it was.")
            chosen = state.run()
        else:
            # Every run can be picked (a failed one shows why it failed); finished ones are the default.
            finished = [r for r in found if r.state in store.USABLE_STATES]
            # With no choice yet, open each page on the kind of run it is made for.
            wanted = "siamese" if page_title == "Correlations & map" else "classifier"
            default = next((r.id for r in finished if r.kind == wanted), finished[0].id if finished else None)
            resync(state.RUN, [r.id for r in found], labels, default)
            chosen = state.pick_one(
                bar,
                "Run",
                [r.id for r in found],
                state.RUN,
                format_func=lambda i: labels.get(i, i),
                default=default,
                help="The run the Evaluate and Correlations pages show; on the Train page, the run to name, "
                "delete or start again from.",
            )
        run = next((r for r in listing if r.id == chosen), None)
        if run is not None:
            annotate.run_about(run, bar)
    else:
        # Runs already chosen stay offered, so a search never drops them from the comparison.
        found_ids = {r.id for r in found}
        ids = [r.id for r in listing if r.id in found_ids or r.id in state.runs()]
        active = [r.id for r in found if r.is_live]
        resync(state.RUNS, ids, labels)
        state.pick_many(
            bar,
            "Runs",
            ids,
            state.RUNS,
            format_func=lambda i: labels.get(i, i),
            default=active or ids[:2],
            help="Runs whose curves the Live and Compare pages overlay.",
        )
