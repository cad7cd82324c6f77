"""What people call runs and datasets, and what they do to them: name, notes and tags (edited here), delete
(asked first), and a new training run from a run's settings. Shared by the sidebar and the pages.

The words are kept by `olr.runs.annotations`, deletions planned and done by `olr.runs.manage`; both refuse in
read-only mode, so the disabled buttons here are a courtesy, not the guard.
"""

from __future__ import annotations

import streamlit as st

from olr import workspace
from olr.errors import OLRError
from olr.runs import annotations, manage
from olr.training import options
from olr.workflows.study import IDENTITY_KEYS, settings_of_run
from ui import state
from ui.guard import guarded, show_exception
from ui.text import plain

#: session keys: the sidebar's search words and tag filter, and the Train form's settings from a run
SEARCH = "olr.search"
SEARCH_TAGS = "olr.search.tags"
PREFILL = "train.prefill"
PREFILL_FRESH, PREFILL_VALUES = "olr.prefill.fresh", "olr.prefill.values"
READONLY_SENTENCE = "This is a read-only demo: names, notes and tags cannot be changed, and nothing can be deleted."


def search_query() -> str:
    return str(st.session_state.get(SEARCH) or "")


def search_tags() -> list[str]:
    return list(st.session_state.get(SEARCH_TAGS) or [])


# ------------------------------------------------------------------ name, notes, tags


def words_form(folder, key: str, name_placeholder: str) -> None:
    """The form that edits the annotations of a run or dataset folder; saved words are shown at once."""
    words = annotations.read(folder)
    if workspace.is_readonly():
        st.caption(READONLY_SENTENCE)
    with st.form(f"{key}.form", border=False):
        name = st.text_input(
            "Name",
            value=words.name,
            placeholder=name_placeholder,
            max_chars=annotations.MAX_NAME,
            key=f"{key}.name",
            help="Shown instead of the id in pickers, legends and tables; blank: the readable default.",
        )
        notes = st.text_area("Notes", value=words.notes, key=f"{key}.notes", max_chars=annotations.MAX_NOTES)
        tags = st.text_input(
            "Tags",
            value=", ".join(words.tags),
            placeholder="baseline, thesis, ...",
            key=f"{key}.tags",
            help="Comma-separated; the sidebar filters by them.",
        )
        saved = st.form_submit_button("Save", icon=":material/save:", disabled=workspace.is_readonly())
    if saved:
        try:
            annotations.write(folder, name=name, notes=notes, tags=tags)
        except OLRError as error:
            show_exception(error)
            return
        state.flash("success", f"Saved the name, notes and tags of {plain(name or name_placeholder)}.")
        st.rerun()


def run_label(run, title: str) -> str:
    """A run in a picker: its title, the kind when a given name hides it, and its state."""
    named = bool(annotations.read(run.path).name)
    return f"{title} ({run.kind}, {run.state})" if named else f"{title} ({run.state})"


def run_about(run, container) -> None:
    """The "About this run" popover in `container`: id, name, notes and tags; a new run from its settings;
    delete."""
    with container.popover("About this run", icon=":material/edit_note:", width="stretch"):
        st.caption(f"Run id `{run.id}` · {plain(run.kind)} on {plain(run.dataset or '?')} · {run.state}")
        words_form(run.path, f"about.run.{run.id}", annotations.default_run_name(run))
        # a registered model or an ensemble was not trained from settings: nothing to train again
        trained_here = run.config.get("model") not in options.TEACHER_TITLES
        if (
            trained_here
            and settings_for_new_run(run).get("kind") in options.KINDS
            and st.button(
                "New run from these settings",
                key=f"about.run.{run.id}.again",
                icon=":material/content_copy:",
                help="Opens the Train form filled with this run's settings (options the recipe decided stay blank).",
                disabled=workspace.is_readonly(),
                width="stretch",
            )
        ):
            start_new_run_from(run)
        if st.button(
            "Delete this run…",
            key=f"about.run.{run.id}.delete",
            icon=":material/delete:",
            disabled=workspace.is_readonly(),
            width="stretch",
        ):
            confirm_deletion("run", run.id)


@guarded("The dataset's name, notes and tags")
def dataset_about(name: str) -> None:
    """The Datasets page's "About this dataset": name, notes and tags, and delete."""
    with st.expander("About this dataset: name, notes, tags, delete", icon=":material/edit_note:"):
        words_form(workspace.dataset_path(name), f"about.dataset.{name}", name)
        if st.button(
            "Delete this dataset…",
            key=f"about.dataset.{name}.delete",
            icon=":material/delete:",
            disabled=workspace.is_readonly(),
        ):
            confirm_deletion("dataset", name)


# ------------------------------------------------------------------ delete


@st.dialog("Delete for good?")
def confirm_deletion(what: str, name: str) -> None:
    """Ask before deleting run (or study) or dataset `name`: what goes, what it breaks (an extra tick then),
    or why it cannot go (live, read-only)."""
    try:
        deletion = manage.dataset_deletion(name) if what == "dataset" else manage.run_deletion(name)
    except OLRError as error:
        show_exception(error)
        return
    st.markdown(plain(deletion.question))
    even_if_used = False
    if deletion.warning:
        st.warning(plain(deletion.warning), icon=":material/warning:")
        even_if_used = st.checkbox("I understand; delete it even so", key=f"delete.{what}.{name}.even")
    c1, c2 = st.columns(2)
    if c1.button(
        "Delete",
        type="primary",
        icon=":material/delete_forever:",
        key=f"delete.{what}.{name}.yes",
        disabled=bool(deletion.warning) and not even_if_used,
    ):
        try:
            manage.delete(deletion, even_if_used=even_if_used)
        except OLRError as error:
            show_exception(error)
            return
        state.flash("success", f"Deleted {plain(deletion.label)}.")
        st.rerun()
    if c2.button("Cancel", key=f"delete.{what}.{name}.no"):
        st.rerun()


# ------------------------------------------------------------------ a new run from a run's settings


def settings_for_new_run(run) -> dict:
    """The Train form's values that repeat `run`: its settings as a study repeats them (`settings_of_run`:
    options the recipe decided go back to blank), with its kind, dataset and classifier run. A run that failed
    before writing its config repeats the launcher's request."""
    if run.config:
        settings = settings_of_run(run.config)
        identity = {k: run.config.get(k) for k in IDENTITY_KEYS}
    else:
        identity = run.request
        settings = {k: v for k, v in identity.items() if k in options.OPTIONS}
    return {**settings, **{k: identity[k] for k in IDENTITY_KEYS if identity.get(k) is not None}}


def _form_keys(kind: str) -> list[str]:
    """The session keys of the Train form's widgets for `kind` (and of the kind picker above it)."""
    return [k for k in st.session_state if str(k).startswith(f"train.{kind}.") or k == "train.kind"]


def start_new_run_from(run) -> None:
    """Open the Train page with its form filled from `run`'s settings.

    The form's widgets are dropped, so they are drawn again from the prefilled values, and the values they
    then hold are handed back to them once more (`send_prefilled_values`): a browser that still shows the form
    would otherwise keep showing the old values."""
    settings = settings_for_new_run(run)
    for key in _form_keys(settings["kind"]):
        del st.session_state[key]
    st.session_state[PREFILL] = {"run": run.id, "title": annotations.run_title(run), "settings": settings}
    st.session_state[PREFILL_FRESH] = True
    st.switch_page("pages/train.py")


def send_prefilled_values(kind: str) -> None:
    """At the end of the Train form: right after "New run from these settings", keep what its widgets hold
    and run the page again, which gives those values to the widgets (`receive_prefilled_values`)."""
    if st.session_state.pop(PREFILL_FRESH, False):
        st.session_state[PREFILL_VALUES] = {k: st.session_state[k] for k in _form_keys(kind)}
        st.rerun()


def receive_prefilled_values() -> None:
    """At the start of the Train form: set its widgets to the values `send_prefilled_values` kept."""
    for key, value in (st.session_state.pop(PREFILL_VALUES, None) or {}).items():
        st.session_state[key] = value


def prefilled(kind: str) -> dict:
    """The Train form's values from "New run from these settings" for `kind` ({} when none)."""
    prefill = st.session_state.get(PREFILL) or {}
    settings = prefill.get("settings") or {}
    return settings if settings.get("kind") == kind else {}


def prefill_kind() -> str | None:
    return ((st.session_state.get(PREFILL) or {}).get("settings") or {}).get("kind")


def prefill_note(kind: str) -> None:
    """Where the Train form's values come from, with a way back to the defaults."""
    prefill = st.session_state.get(PREFILL) or {}
    if not prefilled(kind):
        return
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.info(
        f"Filled from the settings of run **{plain(prefill['title'])}** (`{prefill['run']}`); options its recipe "
        "decided are blank, so they are decided again. Change what you want and launch.",
        icon=":material/content_copy:",
    )
    if c2.button("Start from the defaults", key="train.prefill.clear", icon=":material/restart_alt:"):
        st.session_state.pop(PREFILL, None)
        for key in [k for k in _form_keys(kind) if k != "train.kind"]:
            del st.session_state[key]
        st.session_state[PREFILL_FRESH] = True  # the defaults are sent to the browser as the prefill was
        st.rerun()
