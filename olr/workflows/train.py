"""`python -m olr train`: plan a classifier or Siamese run, train it, then evaluate it.

    python -m olr train --dataset demo --epochs 5 --loss focal
    python -m olr train --config my.json --set shuffle=false --run-id study-inorder
    python -m olr train --kind siamese --classifier-run <run id> --embedding-dim 16
    python -m olr train --resume <run id> [--set epochs=20]

Order of work: the config, dataset, labels and classifier run are validated *before* the
run folder exists (`olr.training.plan`), so bad input (exit 2, one sentence) leaves nothing
behind. Then `models/<run-id>/` is created (id `<UTC yyyymmdd-HHMMSS>-<kind>-<random>` or
`--run-id`; a folder pre-created by `olr.runs.launcher`, holding no config.json yet, is
adopted) with the files listed in docs/ARCHITECTURE.md, and `olr.training.lifecycle` runs
the training (exit 0 finished, 143 stopped, 1 failed).

After a finished training, and before its status says "finished", the run is evaluated
(`olr.analysis.evaluation.evaluate_run`) and its label correlations computed
(`olr.analysis.correlations.compute_for_run` on the test split, unless evaluation already
wrote them, as it does for Siamese runs); `--no-evaluate` skips both. A failure there is logged and kept in
status["followup_errors"]; the run stays "finished".
"""

from __future__ import annotations

import argparse
import traceback
from pathlib import Path

from olr import atomic, workspace
from olr.analysis import correlations, evaluation
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout
from olr.training import checkpoints, devices, lifecycle, options, plan, processes
from olr.training.console import log
from olr.workflows import tracking


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="JSON file of options (see the flags below for their names)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="set one option (repeatable)")
    parser.add_argument("--run-id", metavar="NAME", help="name of the run folder (default: <UTC time>-<kind>-<random>)")
    parser.add_argument("--resume", metavar="RUN", help="continue a stopped/failed run from its last checkpoint")
    parser.add_argument(
        "--logical-cpus",
        type=int,
        default=workspace.env_number("OLR_LOGICAL_CPUS", 0, int),
        metavar="N",
        help="split the CPU into N logical devices and train mirrored over them (env OLR_LOGICAL_CPUS)",
    )
    parser.add_argument(
        "--heartbeat-s", type=float, default=workspace.env_number("OLR_HEARTBEAT_S", 2.0, float), help=argparse.SUPPRESS
    )
    parser.add_argument("--no-evaluate", action="store_true", help="skip evaluation and correlations at the end")
    parser.add_argument(
        "--wait-for-device",
        action="store_true",
        help="stay queued until no other run trains on this run's device (one run per device)",
    )
    options.add_option_flags(parser.add_argument_group("options (also settable with --set or in --config)"))


def raw_config(args) -> dict:
    """Options from --config, then --set, then explicit flags (later wins)."""
    raw = options.load_file(args.config) if args.config else {}
    raw.update(options.parse_assignments(args.set))
    raw.update(options.flag_values(args))
    return raw


def planned_run(args) -> plan.Plan:
    """The validated run of the command line; a new run's folder and config.json are created last."""
    overrides = raw_config(args)
    if args.logical_cpus < 0:
        raise OLRError(
            f"--logical-cpus {args.logical_cpus} is negative; give 0 (off) or a number of devices such as 2."
        )
    if args.resume:
        if args.run_id:
            raise OLRError(
                "--run-id and --resume cannot be combined; --resume continues the named run in its own folder."
            )
        return plan.prepare_resume(args.resume, overrides)
    if args.run_id:
        store.check_new_run_id(args.run_id)
    return plan.create_run(plan.prepare(overrides), args.run_id)


def train_command(args) -> int:
    workspace.require_writable("start a training run")
    role = processes.role_from_env()
    if role.follower:
        return follow_command(args, role)
    the_plan = planned_run(args)
    code = lifecycle.execute(
        the_plan,
        heartbeat_s=args.heartbeat_s,
        logical_cpus=args.logical_cpus,
        wait_for_device=args.wait_for_device,
        after_training=None if args.no_evaluate else evaluate_and_correlate,
    )
    tracking.mirror_quietly(the_plan.run_dir)  # as it ended; nothing without MLflow and a tracking URI
    if role.distributed and code != 0:
        processes.leave(code)
    return code


def follow_command(args, role: processes.ProcessRole) -> int:
    """A follower of a multi-process run (`olr.training.processes`): meet process 0, which has planned the
    run and created its folder by then, and train that run with it, writing into a scratch folder."""
    run_id = args.resume or args.run_id
    if not run_id:
        raise OLRError(
            f"Process {role.process_id} of a {role.process_count}-process run needs the run's name: start every "
            "process with the same --run-id NAME (or --resume NAME)."
        )
    devices.setup(args.logical_cpus)  # returns once every process has joined
    the_plan = plan.follow(run_id)
    with processes.follower_folder(the_plan.run_dir) as scratch:
        the_plan.shared_run_dir, the_plan.run_dir = the_plan.run_dir, scratch
        code = lifecycle.execute(the_plan, heartbeat_s=args.heartbeat_s, logical_cpus=args.logical_cpus)
    if code != 0:
        processes.leave(code)
    return code


def evaluate_and_correlate(run_dir: Path) -> list[str]:
    """Evaluation and correlations of a just-trained run; returns the messages of the steps that failed.

    Called before the status says "finished" (hence check_finished=False). Test-split correlations
    run only if evaluation did not already write them (it does for Siamese runs).
    """
    batch = evaluation_batch(store.load_run(run_dir).config)
    failed = [
        _followup(
            "olr.analysis.evaluation.evaluate_run",
            lambda: evaluation.evaluate_run(run_dir, batch_size=batch, check_finished=False),
        )
    ]
    if not RunLayout(run_dir).agreement_for("test").exists():
        failed.append(
            _followup(
                "olr.analysis.correlations.compute_for_run",
                lambda: correlations.compute_for_run(run_dir, split="test", batch_size=batch, check_finished=False),
            )
        )
    return [message for message in failed if message]


#: tiles a prediction batch holds when a run's config names no batch (a registered or ensemble teacher)
EVALUATION_BATCH = 64


def evaluation_batch(cfg: dict) -> int:
    """Tiles per prediction batch when a run is evaluated in the process that trained it: the tiles of one of
    its training batches (a Siamese pair counts two), so evaluating needs no more memory than training did
    (batches of 256 tiles took the demo's classifier process from 1.45 to 1.57 GB)."""
    batch = cfg.get("batch_size")
    if not isinstance(batch, int) or batch < 1:
        return EVALUATION_BATCH
    return batch * (2 if cfg.get("kind") == "siamese" else 1)


def _followup(name: str, step) -> str | None:
    """Run one follow-up step; None when it worked, else "<name>: <why>" (already logged)."""
    log(f"running {name}")
    try:
        step()
    except Exception as e:  # training succeeded; keep it finished, report the rest
        known = isinstance(e, OLRError) or atomic.is_disk_full(e)
        message = _sentence(e) if known else f"{type(e).__name__}: {e}"
        log(f"{name} failed: {message}")
        if not known:
            traceback.print_exc()
        return f"{name}: {message}"
    return None


def _sentence(error: Exception) -> str:
    """The one sentence of an OLRError, or what a full disk means for the run."""
    if atomic.is_disk_full(error):
        return checkpoints.disk_full_sentence(workspace.models_dir(), then="evaluate the run again")
    return str(error)
