"""The app's shared choices (dataset, run, runs to compare), kept in session state under stable keys.

Each choice lives under its own key, separate from the widget that edits it, so it survives
page switches and option lists that change (a new dataset, a run that appears). Pages read
the choices with `dataset()`, `run()`, `runs()` and set them with `choose_*` followed by a rerun.
"""

from __future__ import annotations

import streamlit as st

DATASET = "olr.dataset"
RUN = "olr.run"
RUNS = "olr.runs"


def _widget_key(key: str) -> str:
    return f"{key}.widget"


def dataset() -> str | None:
    return st.session_state.get(DATASET)


def run() -> str | None:
    return st.session_state.get(RUN)


def runs() -> list[str]:
    return list(st.session_state.get(RUNS) or [])


#: choices made by code (a page's action), waiting to be given to their widget before it is next drawn
PENDING = "olr.pending_choices"


def _choose(key: str, value) -> None:
    st.session_state[key] = value
    # The widget may already be drawn in this run (the sidebar comes first), so its value cannot be set now;
    # it is set before the widget is drawn next. Setting it (not dropping it) makes Streamlit send the value to
    # the browser, which otherwise keeps showing the old choice (and sends it back on the next click).
    st.session_state.setdefault(PENDING, {})[key] = value


def _apply_pending(key: str, options: list[str]) -> bool:
    """Give a choice made by code to the widget of `key`, before that widget is drawn; True if one was given."""
    pending = st.session_state.get(PENDING) or {}
    if key not in pending:
        return False
    value = pending.pop(key)
    wkey = _widget_key(key)
    if isinstance(value, list):
        st.session_state[wkey] = [v for v in value if v in options]
    elif value in options:
        st.session_state[wkey] = value
    else:
        st.session_state.pop(wkey, None)
        return False
    return True


def choose_dataset(name: str | None) -> None:
    _choose(DATASET, name)


def choose_run(run_id: str | None) -> None:
    _choose(RUN, run_id)


def choose_runs(run_ids: list[str]) -> None:
    _choose(RUNS, list(run_ids))


def pick_one(
    container,
    label: str,
    options: list[str],
    key: str,
    *,
    format_func=str,
    help: str | None = None,
    default: str | None = None,
):
    """A selectbox bound to the choice `key`: keeps it when still valid, else falls back to `default`/first."""
    given = _apply_pending(key, options)
    current = st.session_state.get(key)
    if current not in options:
        current = default if default in options else (options[0] if options else None)
    wkey = _widget_key(key)
    if st.session_state.get(wkey) not in options:
        st.session_state.pop(wkey, None)
    index = options.index(current) if current in options else None
    # A value given through the session state needs no index (Streamlit would warn about the two).
    index = None if given else index
    value = container.selectbox(label, options, index=index, key=wkey, format_func=format_func, help=help)
    st.session_state[key] = value
    return value


def pick_many(
    container,
    label: str,
    options: list[str],
    key: str,
    *,
    format_func=str,
    help: str | None = None,
    default: list[str] | None = None,
):
    """A multiselect bound to the choice `key`; choices that vanished are dropped."""
    _apply_pending(key, options)
    stored = st.session_state.get(key)
    current = [o for o in (stored if stored is not None else (default or [])) if o in options]
    wkey = _widget_key(key)
    widget_value = st.session_state.get(wkey)
    if widget_value is not None and any(v not in options for v in widget_value):
        st.session_state.pop(wkey, None)
    value = container.multiselect(
        label,
        options,
        default=current if wkey not in st.session_state else None,
        key=wkey,
        format_func=format_func,
        help=help,
    )
    st.session_state[key] = list(value)
    return list(value)


FLASH = "olr.flash"


def flash(kind: str, text: str) -> None:
    """Keep a message ("success", "info", "warning", "error") to show once after the next rerun."""
    st.session_state.setdefault(FLASH, []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop(FLASH, []):
        getattr(st, kind)(text)
