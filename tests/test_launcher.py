"""olr.runs.launcher: real detached `python -m olr train` processes, idempotent launches, stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from olr import workspace
from olr.errors import OLRError
from olr.runs import launcher, store
from tests.fixtures.runs import TINY_LAUNCH, make_tiny_dataset, wait_for

TINY = TINY_LAUNCH


@pytest.fixture
def tiny_home(_isolated_workspace) -> Path:
    make_tiny_dataset(_isolated_workspace / "data" / "tiny", n_tiles=96)
    return _isolated_workspace


def test_launch_runs_detached_a_repeated_key_starts_nothing_and_stop_ends_it(tiny_home):
    key = launcher.new_key()
    run_id = launcher.launch_training({**TINY, "epochs": 500}, "cpu", key=key)
    run_dir = workspace.run_path(run_id)
    # The id is known at once; the folder already holds the console log and the launch record.
    assert (run_dir / "console.log").exists()
    launch = json.loads((run_dir / "launch.json").read_text())
    assert launch["cuda_visible_devices"] == "" and launch["device"] == "cpu"
    assert os.getpgid(launch["pid"]) == launch["pid"]  # its own process group (own session)
    # The same submission again (a rerun, a double click): same run, no second process or folder.
    assert launcher.launch_training({**TINY, "epochs": 500}, "cpu", key=key) == run_id
    assert launcher.launched_run(key) == run_id
    assert [r.id for r in store.list_runs()] == [run_id]

    # It really trains: the child validates the config, adopts the folder and logs metrics.
    wait_for(
        lambda: store.load_run(run_id).state == "running" and store.read_metrics(run_id).shape[0] > 0,
        180,
        "the run to log metrics",
    )
    run = store.load_run(run_id)
    assert run.config["epochs"] == 500 and run.config["dataset"] == "tiny"
    assert "train" in set(store.read_metrics(run)["split"])
    pid = launcher.run_process(run_id)
    assert pid == launch["pid"]

    assert launcher.stop_run(run_id, grace_s=20, wait=True) is True
    run = store.load_run(run_id)
    assert run.state == "stopped", store.tail_log(run, 30)
    assert launcher.run_process(run_id) is None
    wait_for(lambda: "exit_code" in json.loads((run_dir / "launch.json").read_text()), 10, "the exit to be recorded")
    assert json.loads((run_dir / "launch.json").read_text())["exit_code"] == 143  # SIGTERM handled: clean stop
    assert (run_dir / "last.keras").exists()  # the checkpoint written on the way out
    # Stopping again is a no-op that says so.
    assert launcher.stop_run(run_id) is False


def test_concurrent_launches_of_one_key_start_one_run(tiny_home):
    key = launcher.new_key()
    ids: list[str] = []
    errors: list[BaseException] = []

    def go():
        try:
            ids.append(launcher.launch_training({**TINY, "epochs": 1}, "cpu", key=key))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(ids)) == 1
    folders = [p for p in workspace.models_dir().iterdir() if not p.name.startswith(".")]
    assert [p.name for p in folders] == ids[:1]
    launcher.stop_run(ids[0], grace_s=5, wait=True)


def test_stop_run_kills_a_process_that_ignores_sigterm(_isolated_workspace):
    # A run folder whose process ignores SIGTERM, started the way the launcher starts runs.
    run_dir = workspace.run_path("stuck")
    run_dir.mkdir(parents=True)
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('olr stuck', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "olr stuck"  # the handler is installed
        (run_dir / "launch.json").write_text(
            json.dumps({"pid": proc.pid, "pgid": proc.pid, "host": os.uname().nodename})
        )
        (run_dir / "status.json").write_text(json.dumps({"state": "running", "pid": proc.pid}))
        started = time.monotonic()
        assert launcher.stop_run("stuck", grace_s=1.0, wait=True) is True
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert time.monotonic() - started >= 1.0
        assert json.loads((run_dir / "status.json").read_text())["state"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_launch_that_dies_at_start_up_is_recorded_as_failed(tiny_home):
    # The dataset check happens in the child (exit 2): the run folder must say so, with the log.
    run_id = launcher.launch_training({**TINY, "dataset": "no-such-dataset"}, "cpu")
    run = wait_for(lambda: (r := store.load_run(run_id)).state in store.FINAL_STATES and r, 120, "the launch to fail")
    assert run.state == "failed"
    assert "no-such-dataset" in run.status["error"]
    launch_file = workspace.run_path(run_id) / "launch.json"
    wait_for(lambda: "exit_code" in json.loads(launch_file.read_text()), 30, "the exit to be recorded")
    assert json.loads(launch_file.read_text())["exit_code"] == 2


def test_devices_and_bad_input():
    assert launcher.cuda_visible_devices("cpu") == ""
    assert launcher.cuda_visible_devices("gpu:0,1") == "0,1"
    with pytest.raises(OLRError, match="Unknown device 'tpu'"):
        launcher.cuda_visible_devices("tpu")
    assert launcher.list_devices()[-1] == launcher.Device("cpu", "CPU")
    with pytest.raises(OLRError, match="not allowed"):
        launcher.launch_training(TINY, "cpu", key="../escape")
    with pytest.raises(OLRError, match="no run 'missing'"):
        launcher.stop_run("missing")


def test_read_only_workspace_refuses_to_launch(monkeypatch):
    monkeypatch.setenv("OLR_READONLY", "1")
    with pytest.raises(OLRError, match="read-only"):
        launcher.launch_training(TINY, "cpu")
    assert not workspace.models_dir().exists() or not any(workspace.models_dir().iterdir())


# ------------------------------------------------------------------ Keras backends


def test_available_backends_are_the_installed_ones_default_first_without_importing_them(monkeypatch):
    assert launcher.available_backends()[0] == "tensorflow"  # a dependency, and Keras's default
    assert launcher.available_backends() == ["tensorflow", "jax"]  # both are test requirements
    monkeypatch.setitem(sys.modules, "jax", None)  # how Python marks a package as not importable
    assert launcher.available_backends() == ["tensorflow"]
    # Listing them imports neither: the app stays light.
    code = (
        "import sys; from olr.runs import launcher; launcher.available_backends(); "
        "print(sorted({'tensorflow', 'jax', 'keras'} & set(sys.modules)))"
    )
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert listed.stdout.strip() == "[]", listed.stderr


def test_an_unknown_or_missing_backend_is_one_sentence_and_starts_nothing(_isolated_workspace, monkeypatch):
    with pytest.raises(OLRError, match=r"^Unknown Keras backend 'torch'; pick an installed one \(tensorflow"):
        launcher.launch_training(TINY, "cpu", backend="torch")
    with pytest.raises(OLRError, match="Unknown Keras backend 'TensorFlow'"):
        launcher.launch_study("tiny", backend="TensorFlow")
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(OLRError) as missing:
        launcher.launch_training(TINY, "cpu", backend="jax")
    assert str(missing.value) == (
        "The Keras backend 'jax' is not installed; pick an installed one (tensorflow) or install jax."
    )
    assert not workspace.models_dir().exists() or not any(workspace.models_dir().iterdir())  # no run, no launch key


@pytest.mark.jax_leg
def test_the_backend_reaches_the_child_and_another_backend_is_another_launch(tiny_home):
    config = {**TINY, "epochs": 500}
    on_tf = launcher.launch_training(config, "cpu", backend="tensorflow")
    on_jax = launcher.launch_training(config, "cpu", backend="jax")
    try:
        assert on_jax != on_tf  # the same form with another backend is not a duplicate of the live run
        assert launcher.launch_training(config, "cpu", backend="jax") == on_jax  # but the same one again is
        launch = json.loads((workspace.run_path(on_jax) / "launch.json").read_text())
        assert launch["backend"] == "jax"
        # The child's Keras resolved its KERAS_BACKEND: each process records the backend it trains on.
        for run_id, backend in ((on_jax, "jax"), (on_tf, "tensorflow")):
            wait_for(
                lambda run_id=run_id: any("Keras backend" in line for line in store.tail_log(run_id, 40)),
                180,
                f"{run_id} to report its Keras backend",
            )
            run = store.load_run(run_id)
            assert run.status["backend"] == backend, store.tail_log(run, 30)
            assert f"Keras backend {backend};" in "\n".join(store.tail_log(run, 40))
    finally:
        for run_id in (on_tf, on_jax):
            launcher.stop_run(run_id, grace_s=20, wait=True)


def _stopped_run(run_id: str, status: dict) -> None:
    """A stopped classifier run after epoch 2 of 10 with a checkpoint, as far as `resumable` looks."""
    files = store.RunLayout(workspace.run_path(run_id))
    files.root.mkdir(parents=True)
    files.config.write_text(json.dumps({"kind": "classifier", "dataset": "tiny", "epochs": 10}))
    files.status.write_text(json.dumps({"state": "stopped", "device": "CPU", **status}))
    files.train_state.write_text(json.dumps({"epoch": 2, "step": 20}))
    files.last.write_bytes(b"not a real checkpoint: the resumed process fails, which is all this test needs")


def test_resume_runs_on_the_backend_the_run_recorded_unless_told(_isolated_workspace):
    _stopped_run("old", {})  # from before the backend was recorded: TensorFlow
    _stopped_run("on-jax", {"backend": "jax"})

    def resumed(run_id: str, **kwargs) -> str:
        """The backend the resumed process was started on, once its end is recorded (so it can resume again)."""
        launcher.resume_run(run_id, "cpu", **kwargs)
        launch_file = workspace.run_path(run_id) / "launch.json"
        wait_for(lambda: "exit_code" in json.loads(launch_file.read_text()), 120, f"the resumed {run_id} to end")
        return json.loads(launch_file.read_text())["backend"]

    assert resumed("old") == "tensorflow"
    assert resumed("on-jax") == "jax"
    assert any("KERAS_BACKEND='jax'" in line for line in store.tail_log("on-jax", 200))
    assert resumed("on-jax", backend="tensorflow") == "tensorflow"


def test_olr_runs_shows_the_backend_a_run_recorded_and_nothing_for_older_runs(_isolated_workspace, capsys):
    from olr import cli

    _stopped_run("old", {})
    _stopped_run("on-jax", {"backend": "jax"})
    assert cli.main(["runs", "--json"]) == 0
    listed = {(line := json.loads(text))["id"]: line["backend"] for text in capsys.readouterr().out.splitlines()}
    assert listed == {"old": None, "on-jax": "jax"}
    assert cli.main(["runs"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert "jax" in rows["on-jax"] and "jax" not in rows["old"] and "tensorflow" not in rows["old"]
