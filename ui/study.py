"""The study on the Results pages: the "Run the study" form, one study's progress per stage (its
runs linked to the Live page), its failure sentence or its report, and the list of studies.

A study is `python -m olr study --dataset NAME [--quick]` (classifier -> Siamese -> evaluation
-> correlations -> report), started by `olr.runs.launcher.launch_study` into a folder among the
runs; its record `study.json` says which stage is where, `report.html` is its report.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from olr import workspace
from olr.data.dataset import list_datasets
from olr.data.demo_scene import DEMO_DATASET
from olr.runs import launcher, store
from olr.runs.store import RunLayout, RunState
from olr.runs.studies import (
    STARTING,
    failure_sentence,
    seconds,
    stages,
    study_dataset,
    study_quick,
    study_record,
    study_state,
)
from ui import runs_panel, state
from ui.guard import guarded
from ui.text import plain

REFRESH_S = 3.0
#: the study shown on the Study page (its id), also the key of the "Open a study" selectbox
SHOWN = "study.shown"
#: the report is a long page: shown in a frame of this height that scrolls inside
REPORT_HEIGHT_PX = 900

STAGE_ICONS = {
    "pending": ":material/radio_button_unchecked:",
    "running": ":material/progress_activity:",
    "done": ":material/check_circle:",
    "failed": ":material/error:",
    "skipped": ":material/skip_next:",
}


def duration(started, ended, live: bool) -> str:
    """h:mm:ss from `started` to `ended` (unix seconds), or to now while `live`; "–" when not started."""
    start, end = seconds(started), time.time() if live else seconds(ended)
    if start is None or end is None:
        return "–"
    return runs_panel.duration_text(end - start)


def started_text(value) -> str:
    start = seconds(value)
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(start)) if start is not None else "–"


# --- launching ----------------------------------------------------------------------------------


def dataset_choices() -> list[str]:
    """The prepared datasets, and the demo dataset even before it is prepared (the study prepares it)."""
    names = list_datasets()
    return names if DEMO_DATASET in names else [*names, DEMO_DATASET]


@guarded("Starting the study")
def launch_form() -> None:
    """Dataset (the sidebar's by default), quick or not, and "Run the study"."""
    readonly = workspace.is_readonly()
    choices = dataset_choices()
    chosen = state.dataset()
    prepared = set(list_datasets())
    with st.container(border=True):
        c1, c2, c3 = st.columns([3, 4, 2], vertical_alignment="bottom")
        dataset = c1.selectbox(
            "Dataset",
            choices,
            index=choices.index(chosen) if chosen in choices else 0,
            key=f"study.dataset.{chosen}",  # a new sidebar choice starts the picker from it
            format_func=lambda name: name if name in prepared else f"{name} (prepared first)",
            help="The dataset the study trains and evaluates on; by default the one picked in the sidebar.",
        )
        gpus = launcher.list_gpus()
        quick = c2.toggle(
            "Quick version (small models, a few minutes on a CPU)",
            value=not gpus,
            key="study.quick",
            help="Fewer steps and smaller models: a first look, not the figures to report.",
        )
        pressed = c3.button(
            "Run the study",
            type="primary",
            icon=":material/rocket_launch:",
            key="study.run",
            disabled=readonly,
            help="Read-only demo: studies can be browsed here, not run." if readonly else None,
        )
        command = f"python -m olr study --dataset {dataset}{' --quick' if quick else ''}"
        st.caption(
            f"The same as `{command}`, in a background process: classifier → Siamese network → evaluation → "
            "correlations with references and intervals → report. Its runs appear on the Live page as they start."
        )
    if readonly:
        st.info("This is a read-only demo: studies can be opened below, not run.", icon=":material/lock:")
    if pressed:
        start_study(dataset, quick, runs_panel.default_device())


def start_study(dataset: str, quick: bool, device: str) -> None:
    """Launch the study (one launch per click: an idempotency key kept until it succeeded), show it, rerun."""
    key = st.session_state.setdefault("study.key", launcher.new_key())
    study_id = launcher.launch_study(dataset, quick, device, key=key)
    st.session_state.pop("study.key", None)
    st.session_state[SHOWN] = study_id
    if launcher.launched_by(study_id, key):
        state.flash(
            "success",
            f"Study **{study_id}** started on **{plain(dataset)}** (log in "
            f"models/{study_id}/{RunLayout.CONSOLE}); its stages and runs appear below as they start.",
        )
    else:
        state.flash(
            "info", f"The same study is already running as **{study_id}**; it is shown instead of a second one."
        )
    st.rerun()


# --- one study ----------------------------------------------------------------------------------


def show_study(study_id: str) -> None:
    """The study's progress per stage, refreshing itself while it runs; its failure or its report at the end."""
    live_at_start = store.load_run(study_id).is_live

    @st.fragment(run_every=REFRESH_S if live_at_start else None)
    @guarded("The study's progress")
    def progress() -> None:
        run = store.load_run(study_id)
        if run.is_live != live_at_start:
            st.rerun()  # the refresh timer is set when the fragment is declared: redeclare it
        record = study_record(run)
        shown_state = study_state(run, record)
        header(run, record, shown_state)
        if shown_state == STARTING:
            st.info(
                "Starting: waiting for the study process to write its first stage.", icon=":material/hourglass_top:"
            )
        stage_rows(run, stages(record))
        if shown_state in store.FAILED_STATES:
            st.error(f"The study failed: {plain(failure_sentence(run, record, shown_state))}", icon=":material/error:")
        elif shown_state == RunState.STOPPED:
            st.info(plain(failure_sentence(run, record, shown_state)), icon=":material/stop_circle:")
        console_tail(run, expanded=shown_state in store.FAILED_STATES)
        if shown_state == RunState.FINISHED:
            report(run)
        if run.is_live:
            st.caption(f"Refreshing every {REFRESH_S:g} s · last update {time.strftime('%H:%M:%S')}")

    progress()


def header(run: store.Run, record: dict, shown_state: str) -> None:
    dataset = study_dataset(run, record)
    quick = study_quick(run, record)
    started = record.get("started") or run.status.get("started")
    st.subheader(f"Study {run.id}")
    cols = st.columns(3)
    cols[0].metric("Dataset", dataset or "?", border=True)
    cols[1].metric("State", shown_state, border=True)
    cols[2].metric(
        "Elapsed", duration(started, record.get("ended") or run.status.get("ended"), run.is_live), border=True
    )
    version = {True: " · quick version", False: " · full version"}.get(quick, "")
    st.caption(f"Started {started_text(started)}{version} · folder `models/{run.id}/`")


def stage_rows(run: store.Run, rows: list[dict]) -> None:
    """One line per stage: icon, title, state, its run (a button that opens it on Live) and elapsed time."""
    if not rows:
        return
    done = sum(s.get("state") in ("done", "skipped") for s in rows)
    st.progress(done / len(rows), text=f"{done} of {len(rows)} stages done")
    with st.container(border=True):
        for i, stage in enumerate(rows):
            stage_state = str(stage.get("state") or "pending")
            c1, c2, c3, c4 = st.columns([3, 2, 4, 1.5], vertical_alignment="center")
            title = stage.get("title") or stage.get("name") or f"stage {i + 1}"
            c1.markdown(f"{STAGE_ICONS.get(stage_state, '')} **{plain(title)}**")
            c2.markdown(plain(stage_state))
            stage_run = stage.get("run")
            if isinstance(stage_run, str) and stage_run:
                if c3.button(
                    stage_run,
                    key=f"study.live.{run.id}.{i}",
                    icon=":material/monitoring:",
                    help="Open this run's curves on the Live page.",
                ):
                    state.choose_runs([stage_run])
                    st.switch_page("pages/live.py")
            else:
                c3.markdown("–")
            c4.markdown(duration(stage.get("started"), stage.get("ended"), stage_state == "running"))


def console_tail(run: store.Run, expanded: bool) -> None:
    lines = store.tail_log(run, 25)
    if lines:
        with st.expander(f"Last lines of {RunLayout.CONSOLE}", expanded=expanded):
            st.code("\n".join(lines), language="text")


def report(run: store.Run) -> None:
    """The report inline (a scrolling frame: its styles stay inside) and as a download."""
    path = run.files.report
    try:
        html = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        st.warning(
            f"The study finished but its {RunLayout.REPORT} cannot be read; run the study again to write it.",
            icon=":material/warning:",
        )
        return
    st.download_button(
        f"Download {RunLayout.REPORT}",
        html.encode("utf-8"),
        file_name=f"{run.id}-{RunLayout.REPORT}",
        mime="text/html",
        icon=":material/download:",
        on_click="ignore",
        key=f"study.download.{run.id}",
    )
    components.html(html, height=REPORT_HEIGHT_PX, scrolling=True)


# --- the list of studies ------------------------------------------------------------------------


def studies_table(studies: list[store.Run]) -> pd.DataFrame:
    rows = []
    for run in studies:
        record = study_record(run)
        quick = study_quick(run, record)
        rows.append(
            {
                "study": run.id,
                "dataset": study_dataset(run, record),
                "quick": "yes" if quick else ("no" if quick is False else ""),
                "state": study_state(run, record),
                "started": started_text(record.get("started") or run.status.get("started")),
                "duration": duration(
                    record.get("started") or run.status.get("started"),
                    record.get("ended") or run.status.get("ended"),
                    run.is_live,
                ),
            }
        )
    return pd.DataFrame(rows)


def study_picker(studies: list[store.Run]) -> str | None:
    """The id of the study to show: the one picked (or just launched), else the newest."""
    ids = [run.id for run in studies]
    if st.session_state.get(SHOWN) not in ids:
        st.session_state.pop(SHOWN, None)
    return st.session_state.get(SHOWN) or (ids[0] if ids else None)


def studies_list(studies: list[store.Run]) -> None:
    """Every study with its dataset, state, start and duration, and a picker that opens one above."""
    if not studies:
        st.caption("No study has been run in this workspace yet.")
        return
    st.dataframe(studies_table(studies), hide_index=True)
    labels = {run.id: f"{run.id} · {study_dataset(run, study_record(run)) or '?'}" for run in studies}
    st.selectbox(
        "Open a study",
        list(labels),
        key=SHOWN,
        format_func=lambda i: labels.get(i, i),
        help="The study shown above.",
    )
