"""Two processes on this CPU as two hosts training one run on Keras's JAX backend (keras.distribution over
jax.distributed, Gloo collectives): one run folder, one metrics log, the same weights in both; a host
killed mid-run ends the run "failed" with a sentence, and the survivor exits.

Real processes (`python -m olr train`), real training; see `olr.training.processes`.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from olr.errors import OLRError
from olr.training import processes
from tests.fixtures.runs import REPO_ROOT, TINY_CLASSIFIER, TINY_SIAMESE, olr_cli, start_train_cli

pytestmark = pytest.mark.jax_leg

# every process of the run gets the same command line; Keras's variables say which process it is
PROCESS_COUNT = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_processes(home, args, *, tmp_path, **env):
    port = _free_port()
    procs = []
    for process_id in range(PROCESS_COUNT):
        scratch = tmp_path / f"tmp{process_id}"
        scratch.mkdir()
        procs.append(
            start_train_cli(
                home,
                *args,
                KERAS_BACKEND="jax",
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                KERAS_DISTRIBUTION_NUM_PROCESSES=str(PROCESS_COUNT),
                KERAS_DISTRIBUTION_PROCESS_ID=str(process_id),
                TMPDIR=str(scratch),  # where a follower keeps its scratch copy of the run's files
                **env,
            )
        )
    return procs


def _wait_all(procs, timeout: float = 400) -> list[str]:
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except Exception:
            for p in procs:
                p.kill()
            raise
        outputs.append(out)
    return outputs


def _digests(output: str) -> list[str]:
    return re.findall(r"trained weights sha256 ([0-9a-f]{64})", output)


@pytest.mark.parametrize("kind", ["classifier", "siamese"])
def test_two_processes_train_one_run_together(training_workspace, trained_classifier_run, tmp_path, kind):
    run_id = f"two-hosts-{kind}"
    args = (
        [*TINY_CLASSIFIER, "--batch-size", "15", "--max-train-tiles", "48", "--max-val-tiles", "33"]
        if kind == "classifier"
        # the teacher was trained on TensorFlow: a JAX run reads its .keras file
        else [*TINY_SIAMESE, "--classifier-run", trained_classifier_run.name, "--batch-size", "15"]
    )
    procs = _start_processes(training_workspace, [*args, "--run-id", run_id], tmp_path=tmp_path)
    outputs = _wait_all(procs)
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]

    run_dir = training_workspace / "models" / run_id
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished", status
    assert status["backend"] == "jax" and status["processes"] == PROCESS_COUNT
    assert f"in each of {PROCESS_COUNT} processes" in status["device"] and "DataParallel" in status["device"]
    # one metrics log, written once: a train and a val line per epoch, not one per process
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [(r["epoch"], r["split"]) for r in lines if r["scope"] == "epoch"]
    assert epochs == [(1, "train"), (1, "val"), (2, "train"), (2, "val")]
    # the batch (15) was rounded to a multiple of the two devices, so each process took half of every batch
    config = json.loads((run_dir / "config.json").read_text())
    assert "batch size 14: a multiple of the 2 replicas" in outputs[0]
    assert config["run_id"] == run_id
    # the same trained weights in both processes
    digests = [_digests(out) for out in outputs]
    assert all(len(d) == 1 for d in digests), outputs
    assert digests[0] == digests[1]
    # only process 0 wrote the run folder; the follower's scratch copy is gone
    assert sorted(p.name for p in (run_dir / "processes").iterdir()) == ["0.json", "1.json"]
    assert not any((tmp_path / "tmp1").iterdir())
    assert (run_dir / "best.keras").is_file() and (run_dir / "last.keras").is_file()
    assert (run_dir / "evaluation" / "summary.json").is_file()  # process 0 evaluated the run alone afterwards
    if kind == "classifier":
        # trained on JAX, evaluated again on TensorFlow: the same .keras file gives the same probabilities
        on_jax = _test_probabilities(run_dir)
        proc = olr_cli(training_workspace, "evaluate", run_id, KERAS_BACKEND="tensorflow")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        np.testing.assert_allclose(_test_probabilities(run_dir), on_jax, atol=1e-5)


def _test_probabilities(run_dir) -> np.ndarray:
    with np.load(run_dir / "evaluation" / "test_predictions.npz") as arrays:
        return arrays["probabilities"]


def test_a_run_trained_on_tensorflow_evaluates_on_jax(training_workspace, trained_classifier_run):
    copy = training_workspace / "models" / "cls-evaluated-on-jax"
    shutil.copytree(trained_classifier_run, copy)
    on_tensorflow = _test_probabilities(copy)
    proc = olr_cli(training_workspace, "evaluate", copy.name, KERAS_BACKEND="jax")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # a model trained in mixed bfloat16 (precision "auto" on a CPU with native bfloat16) computes in it on
    # either backend: 8 significant bits, so probabilities agree to about 2^-8 (the two round differently)
    precision = json.loads((copy / "status.json").read_text())["precision"]
    atol = 1e-2 if precision == "mixed_bfloat16" else 1e-5
    np.testing.assert_allclose(_test_probabilities(copy), on_tensorflow, atol=atol)


def test_a_killed_host_fails_the_run_and_the_other_exits(training_workspace, tmp_path):
    run_id = "two-hosts-killed"
    procs = _start_processes(
        training_workspace,
        [*TINY_CLASSIFIER, "--epochs", "200", "--run-id", run_id, "--no-evaluate"],
        tmp_path=tmp_path,
        OLR_PROCESS_TIMEOUT_S="5",
    )
    run_dir = training_workspace / "models" / run_id
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until both train (a metrics line written)
            metrics = run_dir / "metrics.jsonl"
            if metrics.is_file() and metrics.read_text().strip():
                break
            assert all(p.poll() is None for p in procs), "a process ended before training"
            time.sleep(0.5)
        else:
            pytest.fail("the two processes did not start training")
        procs[1].send_signal(signal.SIGKILL)
        out, _ = procs[0].communicate(timeout=120)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    # the survivor noticed (its collective step failed, or process 1 stayed silent for 5 s), recorded the
    # failure in one sentence and left with code 1, not aborted by JAX at exit
    assert procs[0].returncode == 1, out[-4000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed"
    assert status["error"].startswith("The run lost ") and "--resume" in status["error"], status["error"]
    assert "Traceback" not in out


def test_a_silent_process_fails_the_run_within_the_timeout(tmp_path):
    """The watch of `olr.training.processes`: another process that never beats (a host cut off without its
    connections being reset) ends the run "failed" and this process with exit code 1, in about the timeout."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "phase": "training"}))
    script = (
        "import time; from pathlib import Path; from olr.training import processes\n"
        f"role = processes.ProcessRole(0, 3, '127.0.0.1:1')\n"
        f"with processes.ProcessWatch(Path({str(run_dir)!r}), role, beat_s=0.2, timeout=1.5):\n"
        "    time.sleep(60)\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == processes.EXIT_PROCESS_LOST, proc.stderr
    assert took < 30
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed"
    assert "lost process 1 (silent 2 s), process 2 (silent 2 s) of its 3 processes" in status["error"]
    assert json.loads((run_dir / "processes" / "0.json").read_text())["pid"] > 0


def test_the_process_variables_are_read_and_checked():
    assert not processes.role_from_env({}).distributed
    role = processes.role_from_env(
        {
            processes.NUM_PROCESSES_ENV: "2",
            processes.PROCESS_ID_ENV: "1",
            processes.JOB_ADDRESSES_ENV: "10.0.0.1:1234,10.0.0.2:2345",
        }
    )
    assert role == processes.ProcessRole(1, 2, "10.0.0.1:1234") and role.follower
    with pytest.raises(OLRError, match="KERAS_DISTRIBUTION_PROCESS_ID set to this process's number, 0 to 1"):
        processes.role_from_env({processes.NUM_PROCESSES_ENV: "2", processes.PROCESS_ID_ENV: "2"})
    with pytest.raises(OLRError, match="needs KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        processes.role_from_env({processes.NUM_PROCESSES_ENV: "2", processes.PROCESS_ID_ENV: "0"})
    with pytest.raises(OLRError, match="is not a whole number"):
        processes.role_from_env({processes.NUM_PROCESSES_ENV: "two"})
    with pytest.raises(OLRError, match="only on Keras's JAX backend"):
        processes.check_backend(role, "tensorflow")
    # a collective that lost its peer (from a training step, or from the stop agreement's allgather)
    reset = ValueError("UNKNOWN: Gloo AllGather failed: [pair.cc:538] Read error: Connection reset by peer")
    sentence = processes.lost_contact_sentence(reset, role)
    assert sentence.startswith("The run lost contact with another of its 2 processes (UNKNOWN: Gloo AllGather")
    assert processes.lost_contact_sentence(ValueError("a shape mismatch"), role) is None
    assert processes.lost_contact_sentence(reset, processes.ProcessRole()) is None
