"""The Study page: "Run the study" starts a real `python -m olr study` process, a study's stages show
with their runs linked to Live, a failed study says why, a finished one shows and offers its report,
and a read-only workspace refuses to run one. Study folders are written by hand here (no training):
the study command and its report are tested where they are built."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from olr import workspace
from olr.errors import OLRError
from olr.runs import launcher, store
from olr.runs.store import RunLayout
from tests.fixtures.browser import SCREENSHOTS, launched_with_upload_limit
from tests.fixtures.pages import open_app
from tests.fixtures.runs import make_tiny_dataset, wait_for
from tests.test_browser import open_page as open_in_browser
from tests.test_browser import screenshot
from ui.text import plain

PAGE = "pages/study.py"
STAGE_TITLES = {
    "dataset": "Dataset",
    "classifier": "Classifier",
    "siamese": "Siamese network",
    "report": "Report",
}
REPORT_TEXT = "Agreement with the ground truth: 0.61 (0.48 to 0.72)"
REPORT_HTML = f"<!doctype html><html><body><h1>Study report</h1><p>{REPORT_TEXT}</p></body></html>"


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def write_run(run_id: str, config: dict, status: dict) -> Path:
    folder = workspace.run_path(run_id)
    folder.mkdir(parents=True)
    write_json(RunLayout(folder).config, config)
    write_json(RunLayout(folder).status, status)
    return folder


def live_status(started: float) -> dict:
    """A running status held by this test process, so readers see it live."""
    return {
        "state": "running",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "heartbeat": time.time(),
        "started": started,
    }


def write_study(
    study_id: str, state: str, stage_states: list[str], *, age_s: float, runs=None, error=None, report=False
) -> Path:
    """A study folder as `olr study` leaves it, started `age_s` ago: config, status, study.json (and report.html)."""
    t0 = time.time() - age_s
    ended = None if state == "running" else t0 + 540
    status = live_status(t0) if state == "running" else {"state": state, "started": t0, "ended": ended}
    folder = write_run(study_id, {"kind": store.STUDY_KIND, "dataset": "tiny", "quick": True}, status)
    runs = runs or {}
    stages = [
        {
            "name": name,
            "title": title,
            "state": stage_state,
            "started": t0 + 60 * i if stage_state != "pending" else None,
            "ended": t0 + 60 * i + 45 if stage_state in ("done", "failed") else None,
            "run": runs.get(name),
        }
        for i, ((name, title), stage_state) in enumerate(zip(STAGE_TITLES.items(), stage_states))
    ]
    record = {
        "id": study_id,
        "dataset": "tiny",
        "quick": True,
        "state": state,
        "started": t0,
        "ended": ended,
        "error": error,
        "stages": stages,
        "runs": runs,
    }
    write_json(RunLayout(folder).study, record)
    if report:
        RunLayout(folder).report.write_text(REPORT_HTML, encoding="utf-8")
    return folder


@pytest.fixture
def studies(monkeypatch) -> dict[str, str]:
    """A workspace with a running, a failed and a finished study (and the running one's classifier run)."""
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    write_run("cls-1", {"kind": "classifier", "dataset": "tiny"}, live_status(time.time() - 100))
    ids = {"running": "20260101-100000-study-aaaaaa", "failed": "20260101-090000-study-bbbbbb"}
    ids["finished"] = "20260101-080000-study-cccccc"
    write_study(
        ids["running"], "running", ["done", "running", "pending", "pending"], age_s=600, runs={"classifier": "cls-1"}
    )
    write_study(
        ids["failed"],
        "failed",
        ["done", "failed", "skipped", "skipped"],
        age_s=7200,
        error="The classifier run cls-0 failed: its loss became NaN; lower the learning rate and run the study again.",
    )
    write_study(
        ids["finished"], "finished", ["done"] * 4, age_s=86400, runs={"classifier": "c", "siamese": "s"}, report=True
    )
    return ids


def open_study(shown: str | None = None) -> AppTest:
    return open_app(PAGE, **({"study.shown": shown} if shown else {}))


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in getattr(at, kind))


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_a_running_study_shows_its_stages_and_opens_its_run_on_live(studies):
    at = open_study(studies["running"])
    assert at.subheader[0].value == f"Study {studies['running']}"
    assert metric(at, "State") == "running"
    markdown = texts(at, "markdown")
    assert all(title in markdown for title in STAGE_TITLES.values())
    assert "1 of 4 stages done" in str(at.get("progress")[0].proto.text)
    # The studies below: newest first, each with its state.
    table = at.dataframe[0].value
    assert list(table["study"]) == [studies["running"], studies["failed"], studies["finished"]]
    assert list(table["state"]) == ["running", "failed", "finished"]
    # The classifier stage's run opens on the Live page.
    at.button(key=f"study.live.{studies['running']}.1").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Live"
    assert at.session_state["olr.runs"] == ["cls-1"]


def test_a_failed_study_says_why(studies):
    at = open_study(studies["failed"])
    assert metric(at, "State") == "failed"
    assert "its loss became NaN" in texts(at, "error")
    assert not at.get("download_button")


def test_a_finished_study_shows_its_report_and_offers_it_as_a_download(studies):
    at = open_study(studies["finished"])
    assert metric(at, "State") == "finished"
    [download] = at.get("download_button")
    assert download.proto.label == "Download report.html"
    frames = [e for e in at.get("iframe")]
    assert len(frames) == 1 and REPORT_TEXT in frames[0].proto.srcdoc


def test_a_study_folder_before_its_first_record_shows_starting(studies):
    """Between the launch and the process's first write the folder holds only the launcher's files."""
    folder = workspace.run_path("20260101-110000-study-dddddd")
    folder.mkdir()
    write_json(RunLayout(folder).launch_config, {"kind": store.STUDY_KIND, "dataset": "tiny", "quick": True})
    write_json(RunLayout(folder).status, {"state": "queued", "pid": os.getpid(), "started": time.time()})
    RunLayout(folder).console.write_text("$ -m olr study --dataset tiny --quick\n")
    at = open_study(folder.name)
    assert metric(at, "State") == "starting"
    assert "waiting for the study process" in texts(at, "info")
    assert metric(at, "Dataset") == "tiny"


def test_run_the_study_starts_a_real_olr_study_process(monkeypatch):
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    make_tiny_dataset(workspace.data_dir() / "tiny")
    at = open_app(PAGE, **{"olr.dataset": "tiny"})
    at.toggle(key="study.quick").set_value(True)
    at.button(key="study.run").click().run()
    assert not at.exception and not at.warning, texts(at, "warning")
    [study] = [r for r in store.list_runs() if r.files.launch.exists()]  # the folder the launch made
    try:
        launch = json.loads(study.files.launch.read_text())
        assert launch["command"] == ["-m", "olr", "study", "--dataset", "tiny", "--quick", "--study-id", study.id]
        assert launch["start_ticks"] is not None  # a real process was running when it was recorded
        assert study.files.console.read_text().startswith("$ -m olr study --dataset tiny --quick --study-id")
        assert f"Study **{study.id}** started" in texts(at, "success")
        assert at.subheader[0].value == f"Study {study.id}"
        # The process writes its record, or (a command the CLI does not know yet) ends and says so.
        wait_for(lambda: study.files.study.exists() or not store.load_run(study.id).is_live, 60, "the study to start")
        record = json.loads(study.files.study.read_text()) if study.files.study.exists() else {}
        at.run()  # the page reads the record the real process wrote: one line per stage
        assert all(plain(stage["title"]) in texts(at, "markdown") for stage in record.get("stages", []))
    finally:  # the study and any run it started (a run leads its own process group)
        for run in store.list_runs():
            if run.is_live:
                launcher.stop_run(run.id, grace_s=5, wait=True)
    assert store.load_run(study.id).state in store.ENDED_STATES
    at.run()
    assert metric(at, "State") in store.ENDED_STATES and not at.exception


def test_read_only_workspace_refuses_to_run_a_study_but_shows_the_report(studies, monkeypatch):
    monkeypatch.setenv("OLR_READONLY", "1")
    launched_with_upload_limit(monkeypatch, 0)  # the documented read-only launch
    at = open_study(studies["finished"])
    assert at.button(key="study.run").disabled
    assert "read-only demo" in texts(at, "info")
    assert at.get("download_button")  # browsing still works
    with pytest.raises(OLRError, match="read-only"):
        launcher.launch_study("tiny", True)
    assert len([r for r in store.list_runs() if r.kind == store.STUDY_KIND]) == 3


def test_the_study_page_follows_a_study_to_its_report_in_a_browser(app_server, page, browser_workspace):
    """While the study runs its stages refresh without a reload; when it ends its report renders inside the
    page and downloads as the file the study wrote."""
    study_id = "20200101-000000-study-eeeeee"  # removed at the end: the other browser tests never see it
    folder = browser_workspace / "models" / study_id
    folder.mkdir()
    holder = subprocess.Popen(["sleep", "120"], start_new_session=True)  # the live process the status names
    t0 = time.time() - 300
    stages = [
        {"name": name, "title": title, "state": "pending", "started": None, "ended": None, "run": None}
        for name, title in STAGE_TITLES.items()
    ]
    record = {"id": study_id, "dataset": "tiny", "quick": True, "state": "running", "started": t0, "ended": None}

    def advance(done: int, state: str = "running") -> None:
        for i, stage in enumerate(stages):
            stage_state = "done" if i < done else ("running" if i == done else "pending")
            stage.update(state=stage_state, started=t0 + 60 * i, ended=t0 + 60 * i + 45 if i < done else None)
        write_json(folder / RunLayout.STUDY, {**record, "state": state, "error": None, "stages": stages})
        status = {"state": state, "pid": holder.pid, "host": socket.gethostname(), "started": t0}
        write_json(folder / RunLayout.STATUS, {**status, "heartbeat": time.time(), "ended": time.time()})

    try:
        write_json(folder / RunLayout.CONFIG, {"kind": store.STUDY_KIND, "dataset": "tiny", "quick": True})
        advance(1)
        open_in_browser(page, app_server, "study")
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator("h1").first.inner_text().strip() == "Study"
        page.get_by_text("1 of 4 stages done").wait_for()
        advance(2)  # the page refreshes itself: no reload here
        page.get_by_text("2 of 4 stages done").wait_for(timeout=15000)
        screenshot(page, "study-running")
        RunLayout(folder).report.write_text(REPORT_HTML, encoding="utf-8")
        advance(4, "finished")
        report = page.frame_locator("iframe").first
        report.get_by_text(REPORT_TEXT).wait_for(timeout=15000)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download report.html").click()
        assert Path(download.value.path()).read_text(encoding="utf-8") == REPORT_HTML
        screenshot(page, "study")
        assert (SCREENSHOTS / "study.png").exists()
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(folder)
