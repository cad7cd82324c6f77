"""`python -m olr ...`: the command line. The app launches training through it too.

Subcommands live in their own modules and are imported only when used, so `--help` and
light commands do not pay for importing TensorFlow. Each command's module provides
`add_arguments(parser)` and the command's function (`prepare_command(args) -> int`, ...), both
named in `COMMANDS`. Installed with pip, the same command line is the `olr` program.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import sys
from pathlib import Path
from typing import NamedTuple

from olr import workspace
from olr.errors import OLRError


class Command(NamedTuple):
    module: str  # imported only when the subcommand runs
    function: str  # function(args) -> exit code
    help: str
    # What the command does to the workspace, for the read-only refusal ("" = writes nothing there).
    # Checked here, before the command runs, so no writing command slips past read-only mode.
    writes: str = ""


#: subcommand -> where it lives and what it does
COMMANDS: dict[str, Command] = {
    "prepare": Command(
        "olr.data.prepare_command",
        "prepare_command",
        "turn an image raster + CORINE labels into a tile dataset",
        "prepare a dataset",
    ),
    "import-batches": Command(
        "olr.data.thesis_import",
        "import_batches_command",
        "import a folder in the thesis batch format (0.npy, labels0.npy, ...)",
        "import a dataset",
    ),
    "import-bigearthnet": Command(
        "olr.data.bigearthnet",
        "bigearthnet_command",
        "import BigEarthNet-S2 patch folders (12 band files + labels metadata each) as one dataset",
        "import a dataset",
    ),
    "demo-data": Command(
        "olr.data.demo_scene.command",
        "demo_data_command",
        "generate the synthetic demo scene and prepare the demo dataset",
        "prepare the demo dataset",
    ),
    "datasets": Command(
        "olr.data.label_stats", "datasets_command", "list datasets, or print the label statistics of one"
    ),
    "train": Command(
        "olr.workflows.train",
        "train_command",
        "train a classifier or a Siamese network into models/<run-id>/",
        "start a training run",
    ),
    "register": Command(
        "olr.workflows.register",
        "register_command",
        "register a researcher's own Keras classifier (.keras) as a classifier run of a dataset, then evaluate it",
        "register a model as a run",
    ),
    "ensemble": Command(
        "olr.workflows.ensemble",
        "ensemble_command",
        "average finished classifier runs of one dataset into one classifier run, then evaluate it",
        "write an ensemble run",
    ),
    "evaluate": Command(
        "olr.analysis.evaluation",
        "evaluate_command",
        "evaluate a finished run on its test split",
        "write an evaluation into a run folder",
    ),
    "correlations": Command(
        "olr.analysis.correlations",
        "correlations_command",
        "compute label correlation matrices and their agreement for a run",
        "write correlations into a run folder",
    ),
    "embed": Command(
        "olr.analysis.embeddings",
        "embed_command",
        "export the (N, L, k) label embeddings of a Siamese run",
        "export embeddings",
    ),
    "export": Command(
        "olr.analysis.exports",
        "export_command",
        "export a dataset's tile grid or a finished run's results as a GeoPackage and GeoTIFFs for a GIS",
        # refused in read-only mode even with --out outside the workspace: one rule, no path to check
        "write an export",
    ),
    "predict": Command(
        "olr.analysis.predict",
        "predict_command",
        "apply a finished run to an image without labels: per-label probability GeoTIFFs and a GeoPackage of tiles",
        "write predictions",
    ),
    "runs": Command("olr.runs.listing", "runs_command", "list runs and their state"),
    "track": Command(
        "olr.workflows.tracking",
        "track_command",
        "mirror runs to MLflow (installed, with MLFLOW_TRACKING_URI set); the run folders stay the source of truth",
    ),
    # annotate and delete refuse on a read-only workspace in the library (annotations.write, manage.delete),
    # so `annotate RUN` without changes, which only prints, stays allowed
    "annotate": Command(
        "olr.runs.annotations", "annotate_command", "show or set the name, notes and tags of a run or dataset"
    ),
    "delete": Command("olr.runs.manage", "delete_command", "delete a run, study or dataset (asks first)"),
    "study": Command(
        "olr.workflows.study",
        "study_command",
        "the whole study on a dataset: classifier, Siamese, evaluation, correlations, report (or --from a report)",
        "run a study",
    ),
    "demo": Command(
        "olr.workflows.demo",
        "demo_command",
        "the study on the demo scene (its dataset prepared if needed), checked against the demo's targets",
        "run the demo pipeline",
    ),
    "sweep": Command(
        "olr.workflows.sweep",
        "sweep_command",
        "launch a preset series of runs (e.g. the thesis's study)",
        # run_sweep refuses on a read-only workspace; `sweep --table` only reads, so it stays allowed
    ),
    # bench writes only into a temporary folder or its own --workdir, never into the workspace
    "bench": Command("olr.workflows.bench", "bench_command", "benchmarks: prepare, classifier, siamese"),
}


def _program() -> str:
    """How the user called us: `olr` (the installed program) or `python -m olr`."""
    name = Path(sys.argv[0]).name
    return "python -m olr" if name in ("__main__.py", "-c", "") else name


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<15} {command.help}" for name, command in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog=_program(),
        description="OLR Studio command line.",
        epilog=f"subcommands:\n{lines}\n\nRun `{_program()} SUBCOMMAND --help` for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=list(COMMANDS), metavar="SUBCOMMAND", help="one of the subcommands below")
    return p


#: glibc's malloc arenas a command process may use (mallopt's M_ARENA_MAX, as MALLOC_ARENA_MAX sets it)
MALLOC_ARENAS = 2
M_ARENA_MAX = -8


def cap_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at MALLOC_ARENAS before TensorFlow starts its threads; True when capped here.

    Why: glibc gives threads arenas of their own (up to 8 per core), and TensorFlow's threads leave memory
    spread over them that is never handed back: the demo's classifier training grew to 1.56 GB, 1.34 GB with
    two arenas, in the same time. A MALLOC_ARENA_MAX the user set wins; other C libraries are left as they are.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to cap
        return False
    return mallopt(M_ARENA_MAX, MALLOC_ARENAS) == 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cap_malloc_arenas()
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        top.print_usage(sys.stderr)
        print(f"error: unknown subcommand {argv[0]!r}; run `{_program()} --help` for the list.", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    command = COMMANDS[name]
    try:
        module = importlib.import_module(command.module)
        parser = argparse.ArgumentParser(prog=f"{_program()} {name}", description=command.help)
        module.add_arguments(parser)
        args = parser.parse_args(rest)  # --help still answers on a read-only workspace
        if command.writes:
            workspace.require_writable(command.writes)
        return int(getattr(module, command.function)(args) or 0)
    except OLRError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
