"""`python -m olr demo`: the study (`olr.workflows.study`) on the demo scene, in one command.

Prepares the demo dataset if needed (the study's dataset stage), then trains the classifier
and the Siamese network, evaluates both, computes the correlation agreement and writes the
report, checked against the demo scene's targets (`study.TARGETS`). `--run-prefix` names the
study folder; its runs are `<prefix>-classifier` and `<prefix>-siamese`.
"""

from __future__ import annotations

import argparse

from olr.data.demo_scene import DEMO_DATASET
from olr.workflows import study


def run_demo(quick: bool = False, run_prefix: str | None = None, progress=study.say) -> dict:
    """The study on the demo dataset; returns its record (`study.json`)."""
    return study.run_study(DEMO_DATASET, quick=quick, study_id=run_prefix, progress=progress)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    study.add_run_flags(parser)
    parser.add_argument(
        "--run-prefix",
        metavar="NAME",
        help="the study's id: its folder, and the prefix of its two run ids (default <UTC time>-study-<random>)",
    )


def demo_command(args) -> int:
    return study.run_and_report(DEMO_DATASET, args.quick, args.run_prefix, study.study_settings(args.quick), args.json)
