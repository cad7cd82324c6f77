"""The run a result page shows: choosing it (empty and unfinished states explained), its settings in words,
and evaluating one that ended without an evaluation."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import streamlit as st

from olr import workspace
from olr.analysis import compare, run_data
from olr.errors import OLRError
from olr.runs import annotations, store
from ui import runs_panel, state
from ui.guard import guarded, show_exception


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


def settings(run, expanded: bool = False) -> None:
    """The run's settings in a collapsed table (labels and values as the Train page words them)."""
    with st.expander("Settings of this run", expanded=expanded, icon=":material/tune:"):
        st.table(compare.setting_rows(run).set_index("setting"))


#: the last lines of the evaluation's output kept on the page while it runs and when it fails
OUTPUT_LINES = 12


def run_command(args: list[str], *, running: str, done: str, failed: str) -> list[str]:
    """`python -m olr ARGS` in a child process (TensorFlow stays out of the server, and on the CPU, never
    competing with training for a GPU), its last output lines shown in a status box as they come; an
    OLRError naming the command when it fails. Returns its output lines."""
    argv = [sys.executable, "-m", "olr", *args]
    env = dict(os.environ, OLR_HOME=str(workspace.home()), CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    lines: list[str] = []
    with st.status(running, expanded=True) as box:
        output = st.empty()
        with subprocess.Popen(
            argv,
            cwd=workspace.REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            for line in proc.stdout:
                lines.append(line.rstrip())
                output.code("\n".join(lines[-OUTPUT_LINES:]) or " ", language=None)
        if proc.returncode != 0:
            box.update(label=failed, state="error", expanded=True)
            last = lines[-1].removeprefix("error: ") if lines else "no output"
            raise OLRError(
                f"{failed}: {last} Its last lines are shown above; the command was "
                f"`python -m olr {' '.join(shlex.quote(a) for a in args)}`."
            )
        box.update(label=done, state="complete")
    return lines


@guarded("Evaluating the run")
def evaluate(run) -> None:
    """Evaluate an ended run from the page: `python -m olr evaluate RUN` in a child process."""
    workspace.require_writable("evaluate a run")
    run_data.require_finished(run)
    title = annotations.run_title(run)
    run_command(
        ["evaluate", run.id],
        running=f"Evaluating {title} on its validation and test splits…",
        done=f"Evaluated {title}",
        failed=f"The evaluation of run {run.id} failed",
    )
    state.flash("success", f"Evaluated **{title}**: its figures are below.")
    st.rerun()
