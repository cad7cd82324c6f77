"""`python -m olr ensemble RUN RUN [RUN ...]`: finished classifier runs averaged into one classifier run.

    python -m olr ensemble cls-seed0 cls-seed1 cls-seed2 --run-id cls-ensemble

The members' probabilities are averaged (`olr.workflows.teachers.ensemble_runs`), by default with
weights chosen on the validation split (ensemble selection: at least as good as the best member
there; `--weights equal` for the plain mean); the new run is
evaluated and its correlations computed as after training (`--no-evaluate` skips both), and a
Siamese network can be trained against it like against any classifier run.
"""

from __future__ import annotations

import argparse

from olr.workflows import teachers, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="finished classifier runs of one dataset (two or more)")
    parser.add_argument(
        "--run-id", metavar="NAME", help="name of the run folder (default: <UTC time>-classifier-ensemble-<random>)"
    )
    parser.add_argument(
        "--weights",
        choices=teachers.ENSEMBLE_WEIGHTS,
        default="selected",
        help="selected: how often each member enters the mean, chosen on validation (default); equal: the plain mean",
    )
    parser.add_argument("--no-evaluate", action="store_true", help="skip evaluation and correlations")


def ensemble_command(args) -> int:
    run_dir = teachers.ensemble_runs(args.runs, run_id=args.run_id, weights=args.weights)
    print(f"ensemble written as run {run_dir.name}")
    failed = [] if args.no_evaluate else train.evaluate_and_correlate(run_dir)
    return 1 if failed else 0
