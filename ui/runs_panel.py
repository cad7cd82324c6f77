"""Run listings shared by pages: active runs with their progress and Stop buttons, recent runs with why the
failed ones failed, failed-run details with their settings, and the one-click study on the demo dataset
offered where there are no runs yet. What the progress says is `olr.runs.progress`'s."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from olr import workspace
from olr.analysis import compare
from olr.data.demo_scene import DEMO_DATASET
from olr.errors import OLRError
from olr.runs import annotations, launcher, progress, store
from olr.runs.progress import duration_text  # also ui.study's, through this module
from olr.runs.store import RunLayout, RunState
from ui import state
from ui.guard import guarded
from ui.text import plain

REFRESH_S = 3.0
STATE_ICONS = {
    RunState.QUEUED: ":material/schedule:",
    RunState.RUNNING: ":material/play_circle:",
    RunState.FINISHED: ":material/check_circle:",
    RunState.FAILED: ":material/error:",
    RunState.STOPPED: ":material/stop_circle:",
    RunState.DEAD: ":material/heart_broken:",
    RunState.INCOMPLETE: ":material/help:",
}


def elapsed(run) -> str:
    start = run.status.get("started")
    if not isinstance(start, (int, float)):
        return "–"
    end = run.status.get("ended") if not run.is_live else None
    return duration_text((end if isinstance(end, (int, float)) else time.time()) - start)


def default_device() -> str:
    """Where a one-click launch (the demo's study, "Run the study") runs: the first GPU, else the CPU."""
    gpus = launcher.list_gpus()
    return gpus[0].id if gpus else "cpu"


def progress_text(run) -> str:
    """How far the run got, in one line (`olr.runs.progress.describe`)."""
    return progress.describe(run).text


def describe_failure(run) -> None:
    """A failed, dead or stopped run: why it ended, a Resume action, its settings and the end of its console log."""
    title = plain(annotations.run_title(run))
    told = progress.describe(run)
    error = run.status.get("error")
    if run.state == RunState.DEAD:
        st.error(
            f"Run {title} stopped reporting (its process is gone or its heartbeat is stale) without finishing; "
            f"it got to {told.text}. Last words: {plain(told.failure)}"
        )
    elif told.failure:
        st.error(f"Run {title} failed: {plain(told.failure)}")
    elif run.state == RunState.STOPPED:
        st.info(f"Run {title} was stopped at {told.text}.")
    resume_action(run)
    tail = store.tail_log(run, 25)
    if error and len(str(error).splitlines()) > 1:
        with st.expander("Error details"):
            st.code(str(error), language="text")
    settings = compare.setting_rows(run)
    if not settings.empty:
        with st.expander(f"Settings of {title}"):
            st.dataframe(settings, hide_index=True, width="stretch")
    if tail:
        with st.expander(f"Last lines of {RunLayout.CONSOLE}", expanded=not error):
            st.code("\n".join(tail), language="text")


def show_flags(run) -> None:
    """The warnings a run's status holds about how it ended (e.g. a best checkpoint below the all-absent baseline)."""
    for flag in run.flags:
        st.warning(f"Run {plain(annotations.run_title(run))}: {flag['message']}", icon=":material/warning:")


def resume_action(run) -> None:
    """A Resume button when the run has a checkpoint to continue from, else why not."""
    reason = launcher.resumable(run)
    if reason:
        st.caption(reason)
        return
    done = run.train_state.get("epoch", 0)
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c2.caption(
        f"Continues from the checkpoint after epoch {done} of {run.config.get('epochs')} in the same run folder "
        f"(`python -m olr train --resume {run.id}`)."
    )
    c1.button(
        f"Resume from epoch {done}",
        key=f"resume.{run.id}",
        icon=":material/replay:",
        on_click=_resume,
        args=(run.id,),
        disabled=workspace.is_readonly(),
    )


def _resume(run_id: str) -> None:
    key = st.session_state.setdefault(f"resume.key.{run_id}", launcher.new_key())
    try:
        launcher.resume_run(run_id, key=key)
    except Exception as error:  # shown at the top of the page; nothing else changes
        state.flash("error", f"Could not resume {run_id}: {error}")
        return
    st.session_state.pop(f"resume.key.{run_id}", None)
    state.flash(
        "success", f"Resuming **{run_id}** from its last checkpoint; it is live again on the Train and Live pages."
    )


def _stop(run_id: str) -> None:
    try:
        stopped = launcher.stop_run(run_id, grace_s=10)
    except Exception as error:  # shown as a toast; the panel stays
        st.session_state["runs.stop_error"] = str(error)
        return
    st.session_state["runs.stop_note"] = (
        f"Stopping {run_id}: it saves a checkpoint and ends (forced after 10 s)."
        if stopped
        else f"{run_id} has no live process on this machine; nothing to stop."
    )


def active_runs() -> None:
    """Live runs (queued/running) with state, device, elapsed time, last log lines and Stop buttons.

    Refreshes itself every few seconds while a run is live (a fragment, not a page rerun).
    """
    live_now = [r for r in store.list_runs() if r.is_live]

    @st.fragment(run_every=REFRESH_S if live_now else None)
    @guarded("The run list")
    def panel() -> None:
        runs = store.list_runs()
        live = [r for r in runs if r.is_live]
        if bool(live) != bool(live_now):
            st.rerun()  # the refresh timer is set when the fragment is declared: redeclare it
        for key, show in (("runs.stop_note", st.info), ("runs.stop_error", st.error)):
            if key in st.session_state:
                show(st.session_state.pop(key))
        if not live:
            st.caption(
                "No run is active. Launched runs appear here with their log; "
                "they keep running if you close the browser."
            )
            return
        for run in live:
            told = progress.describe(run)
            with st.container(border=True):
                c1, c2, c3, c4, c5 = st.columns([4, 2, 2, 2, 1.3], vertical_alignment="center")
                backend = launcher.recorded_backend(run, default=None)
                c1.markdown(
                    f"{STATE_ICONS.get(run.state, '')} **{plain(annotations.run_title(run))}**  \n"
                    f"{run.kind} on `{run.dataset or '?'}` · `{run.id}`" + (f" · {backend}" if backend else "")
                )
                c2.metric("State", run.state, help=told.doing)
                c3.metric("Device", run.status.get("device") or _device_of(run))
                c4.metric(
                    "Time left",
                    duration_text(told.seconds_left) if told.seconds_left is not None else "–",
                    help=f"Estimated at the current rate, validations included; {elapsed(run)} elapsed.",
                )
                c5.button(
                    "Stop",
                    key=f"stop.{run.id}",
                    icon=":material/stop:",
                    on_click=_stop,
                    args=(run.id,),
                    disabled=workspace.is_readonly(),
                    help="SIGTERM: the run saves a checkpoint and stops (killed after 10 s).",
                )
                progress_bar(run, told)
                lines = store.tail_log(run, 6)
                st.code("\n".join(lines) if lines else "(no output yet)", language="text")

    panel()


def progress_bar(run, told: progress.RunProgress | None = None, container=None) -> None:
    """A live run's progress bar labelled with its progress line (what it is doing before it trains)."""
    told = told or progress.describe(run)
    (container or st).progress(told.fraction or 0.0, text=told.text)


LAUNCHED = "train.launched"  # session key: the run this session launched last on the Train page


def launched_run() -> None:
    """The run this session launched last: its state and progress while it starts and trains, and why it
    failed when it did (a launch that fails before training, e.g. on a label mapping the dataset cannot take,
    says so here, on the page it was launched from). Refreshes itself while the run is live."""
    run_id = st.session_state.get(LAUNCHED)
    try:
        run = store.load_run(run_id) if run_id else None
    except OLRError:  # deleted meanwhile
        run = None
    if run is None:
        return

    @st.fragment(run_every=REFRESH_S if run.is_live else None)
    @guarded("The launched run")
    def panel() -> None:
        fresh = store.load_run(run)
        if fresh.is_live != run.is_live:
            st.rerun()  # start or stop the refresh timer
        title = annotations.run_title(fresh)
        with st.container(border=True):
            c1, c2 = st.columns([6, 1], vertical_alignment="center")
            c1.markdown(f"{STATE_ICONS.get(fresh.state, '')} Launched **{plain(title)}** (`{fresh.id}`): {fresh.state}")
            c2.button("Dismiss", key="train.launched.dismiss", on_click=st.session_state.pop, args=(LAUNCHED, None))
            if fresh.is_live:
                progress_bar(fresh)
            elif fresh.state in store.ENDED_EARLY_STATES:
                describe_failure(fresh)
            else:
                st.caption(
                    f"{progress.describe(fresh).text}; its curves and results are on the Live and Evaluate pages."
                )

    panel()


def _device_of(run) -> str:
    launch = store.read_json(run.files.launch)
    return launch.get("device") or "?"


def recent_runs(limit: int = 8) -> None:
    """Ended runs, newest first, with why the failed ones failed; those that ended early can be expanded for
    their error, settings and log."""
    ended = [r for r in store.list_runs() if not r.is_live][:limit]
    if not ended:
        return
    rows = []
    for r in ended:
        told = progress.describe(r)
        rows.append(
            {
                "run": annotations.run_title(r),
                "state": r.state,
                "reason": told.failure or "",
                "kind": r.kind,
                "backend": launcher.recorded_backend(r, default=None) or "",
                "dataset": r.dataset,
                "duration": elapsed(r),
                "progress": told.text,
                "warning": ", ".join(store.FLAG_TITLES.get(f["kind"], f["kind"]) for f in r.flags),
                "id": r.id,
            }
        )
    # fixed widths that fit a 1280 px window; a long reason is cut here and whole in the run's expander label
    widths = {
        "run": 150,
        "state": 60,
        "reason": 180,
        "kind": 70,
        "backend": 65,
        "dataset": 65,
        "duration": 55,
        "progress": 120,
        "warning": 75,
        "id": 80,
    }
    table = pd.DataFrame(rows)
    if not any(row["warning"] for row in rows):
        table = table.drop(columns="warning")
    # the backend tells runs apart only when some trained off the default (older runs record none)
    if not any(row["backend"] not in ("", launcher.DEFAULT_BACKEND) for row in rows):
        table = table.drop(columns="backend")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            **{name: st.column_config.TextColumn(name, width=width) for name, width in widths.items() if name in table},
            "run": st.column_config.TextColumn("run", width=widths["run"], help="The run's name (its id: last column)"),
            "reason": st.column_config.TextColumn(
                "reason", width=widths["reason"], help="Why a failed run ended: its error's last line"
            ),
        },
    )
    for r, row in zip(ended, rows, strict=True):
        if r.state in store.ENDED_EARLY_STATES:
            why = f" · {row['reason']}" if row["reason"] else ""
            with st.expander(f"{STATE_ICONS[r.state]} {plain(row['run'])}: {r.state}{plain(why)}"):
                describe_failure(r)


@guarded("Starting the study on the demo dataset")
def offer_demo_pipeline(where: str) -> None:
    """Empty state of the result pages: explain, and offer the study on the demo dataset in one click
    (`python -m olr study --dataset demo`, which prepares the demo dataset first when needed)."""
    st.info(
        f"There are no finished runs to show on the {where} page yet. Train a classifier (and then a Siamese "
        "network) on the Train page, or run the whole study on the demo dataset here: demo dataset → classifier → "
        "Siamese network → evaluation → correlations → report, in a background process (see the Study page).",
        icon=":material/info:",
    )
    if workspace.is_readonly():
        return
    key = st.session_state.setdefault("demo.key", launcher.new_key())
    c1, c2 = st.columns([2, 3], vertical_alignment="center")
    quick = c2.toggle(
        "Quick version (small models, a few minutes on a CPU)",
        value=not launcher.list_gpus(),
        key=f"demo.quick.{where}",
    )
    if c1.button(
        "Run the study on the demo dataset",
        type="primary",
        icon=":material/rocket_launch:",
        key=f"demo.{where}",
    ):
        study_id = launcher.launch_study(DEMO_DATASET, quick, default_device(), key=key)
        st.session_state["demo.key"] = launcher.new_key()
        state.flash(
            "success",
            f"Study **{study_id}** started on the demo dataset (log in models/{study_id}/{RunLayout.CONSOLE}). "
            "Follow its stages on the Study page; its runs appear on the Train and Live pages.",
        )
        st.rerun()
