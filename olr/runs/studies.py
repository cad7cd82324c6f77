"""Study folders read back: which runs are studies, their record, stages, state and failure.

A study (`python -m olr study`, `olr.workflows.study`) lives in a folder among the runs
(`olr.runs.store.STUDY_KIND`); its record is `study.json`. These readers never raise on a
half-written or damaged folder: a study started by the launcher has only the launcher's files
until its process writes the record. No TensorFlow, no Streamlit.
"""

from __future__ import annotations

from olr.runs import store
from olr.runs.store import RunState

#: a study folder before its process wrote study.json: the launcher's files only
STARTING = "starting"


def list_studies() -> list[store.Run]:
    """Every study folder of the workspace, newest first."""
    return [run for run in store.list_runs() if run.is_study]


def study_record(run: store.Run) -> dict:
    """study.json ({} before the process's first write, or when unreadable)."""
    return store.read_json(run.files.study)


def seconds(value) -> float | None:
    """A time of the record (unix seconds) as a float; None when it is missing or not a number."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def stages(record: dict) -> list[dict]:
    """The record's stages that are objects (a damaged entry is left out, not shown as a crash)."""
    return [s for s in record.get("stages") or [] if isinstance(s, dict)]


def study_state(run: store.Run, record: dict) -> str:
    """ "starting" while its process lives but has written no record yet, "running" while it lives with one;
    once the process is gone, the state its status.json ends in (the study says finished only once its
    report is written; failed, stopped, or "dead" for a process that vanished)."""
    if run.is_live:
        return RunState.RUNNING.value if record else STARTING
    return run.state


def study_dataset(run: store.Run, record: dict) -> str | None:
    request = store.read_json(run.files.launch_config)
    return record.get("dataset") or run.dataset or request.get("dataset")


def study_quick(run: store.Run, record: dict) -> bool | None:
    for source in (record, run.config, store.read_json(run.files.launch_config)):
        if isinstance(source.get("quick"), bool):
            return source["quick"]
    return None


def failure_sentence(run: store.Run, record: dict, shown_state: str) -> str:
    """Why the study ended without its report, in one sentence."""
    if isinstance(record.get("error"), str) and record["error"].strip():
        return record["error"].strip()
    if shown_state == RunState.DEAD:
        return "Its process stopped reporting (it is gone, or its heartbeat is stale) before the study finished."
    if shown_state == RunState.STOPPED:
        return "The study was stopped before it finished; run it again to complete it."
    error = run.status.get("error")
    lines = [line for line in str(error or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "It ended without saying why; the end of its console log is below."
