"""`python -m olr ...`: the command line. The app launches training through it too.

Subcommands live in their own modules and are imported only when used, so `--help` and
light commands do not pay for importing TensorFlow. Each module provides
`add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from olr.errors import OLRError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("olr.data.prepare", "turn an image raster + CORINE labels into a tile dataset"),
    "import-batches": ("olr.data.thesis_import", "import a folder in the thesis batch format (0.npy, labels0.npy, ...)"),
    "demo-data": ("olr.data.demo_scene", "generate the synthetic demo scene and prepare the demo dataset"),
    "datasets": ("olr.data.label_stats", "list datasets, or print the label statistics of one"),
    "train": ("olr.workflows.train", "train a classifier or a Siamese network into models/<run-id>/"),
    "evaluate": ("olr.analysis.evaluation", "evaluate a finished run on its test split"),
    "correlations": ("olr.analysis.correlations", "compute label correlation matrices and their agreement for a run"),
    "embed": ("olr.analysis.embeddings", "export the (N, L, k) label embeddings of a Siamese run"),
    "runs": ("olr.runs.store", "list runs and their state"),
    "demo": ("olr.workflows.demo", "one command: demo dataset, classifier, Siamese, evaluation, agreement"),
    "sweep": ("olr.workflows.sweep", "launch a preset series of runs (e.g. the thesis's study)"),
    "bench": ("olr.workflows.bench", "benchmarks: prepare, classifier, siamese"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<15} {help_}" for name, (_, help_) in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog="python -m olr",
        description="OLR Studio command line.",
        epilog=f"subcommands:\n{lines}\n\nRun `python -m olr SUBCOMMAND --help` for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=list(COMMANDS), metavar="SUBCOMMAND", help="one of the subcommands below")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        top.print_usage(sys.stderr)
        print(f"error: unknown subcommand {argv[0]!r}; run `python -m olr --help` for the list.", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"python -m olr {name}", description=help_)
        module.add_arguments(parser)
        args = parser.parse_args(rest)
        return int(module.run(args) or 0)
    except OLRError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
