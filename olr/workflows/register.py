"""`python -m olr register MODEL --dataset NAME`: a researcher's own Keras classifier as a classifier run.

    python -m olr register my_model.keras --dataset demo --outputs outputs.txt --input-scaling raw
    python -m olr register other.keras --dataset demo --outputs names.json --mapping mapping.json \\
        --bands B4 B3 B2 B8 --input-scaling 0.0001 --logits --run-id my-teacher

The checks and the run it writes are `olr.workflows.teachers.register_model`'s; the run is then
evaluated and its correlations computed as after training (`--no-evaluate` skips both), so it
can be compared with trained runs and a Siamese network trained against it.
"""

from __future__ import annotations

import argparse

from olr.workflows import teachers, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the model file: .keras (Keras 3), or .h5 where Keras 3 reads it")
    parser.add_argument("--dataset", required=True, help="the dataset the model classifies (name or folder)")
    parser.add_argument(
        "--outputs",
        metavar="FILE",
        help="the model's outputs in order: label names or CLC codes, one per line or a JSON list "
        "(an empty line, - or null leaves an output out); default: the labels of the run config beside the model",
    )
    parser.add_argument(
        "--mapping",
        metavar="FILE",
        help='JSON object from the model\'s names to the dataset\'s labels or codes, e.g. {"Water": "Water bodies"}; '
        "null leaves an output out",
    )
    parser.add_argument(
        "--bands",
        nargs="+",
        metavar="BAND",
        help="the dataset's bands in the order the model takes them (names or 1-based numbers); "
        "default: all, in the dataset's order",
    )
    parser.add_argument(
        "--input-scaling",
        metavar="HOW",
        help="what the model takes: raw (the dataset's values), standardize (by the dataset's band mean and std) "
        "or a factor such as 0.0001; may be left out only when the model starts with a Normalization layer",
    )
    parser.add_argument("--logits", action="store_true", help="the model gives logits (a sigmoid is added)")
    parser.add_argument(
        "--run-id", metavar="NAME", help="name of the run folder (default: <UTC time>-classifier-registered-<random>)"
    )
    parser.add_argument("--no-evaluate", action="store_true", help="skip evaluation and correlations")


def register_command(args) -> int:
    run_dir = teachers.register_model(
        args.model,
        args.dataset,
        outputs=args.outputs,
        mapping=args.mapping,
        bands=args.bands,
        input_scaling=args.input_scaling,
        logits=args.logits,
        run_id=args.run_id,
    )
    print(f"registered as run {run_dir.name}")
    failed = [] if args.no_evaluate else train.evaluate_and_correlate(run_dir)
    return 1 if failed else 0
