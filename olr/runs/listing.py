"""`olr runs`: the runs with their state, Keras backend, progress, reason and words (name, tags), as text or JSON
lines.

Apart from the run store so that the store imports neither the annotations nor the progress words:
both read runs through the store.
"""

from __future__ import annotations

import json

from olr import workspace
from olr.runs import annotations, launcher, progress, store


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the runs as JSON lines")
    parser.add_argument("--tail", metavar="RUN", help="print the last lines of one run's console log")
    parser.add_argument("-n", type=int, default=20, help="number of log lines for --tail")
    parser.add_argument(
        "--search",
        metavar="QUERY",
        default="",
        help="only runs whose id, name, notes, tags, kind or dataset hold every word",
    )
    parser.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="only runs with this tag (repeatable)"
    )


def runs_command(args) -> int:
    if args.tail:
        print("\n".join(store.tail_log(args.tail, args.n)))
        return 0
    runs = store.list_runs()
    if args.search or args.tag:
        runs = [r for r in runs if annotations.run_matches(r, args.search, args.tag)]
        if not runs and not args.json:
            print("No run matches the search; python -m olr runs lists them all.")
            return 0
    if args.json:
        for r in runs:
            line = {"id": r.id, "kind": r.kind, "state": r.state, "dataset": r.dataset, "epoch": r.status.get("epoch")}
            line["backend"] = launcher.recorded_backend(r, default=None)  # None: not recorded (older runs)
            told = progress.describe(r)
            line |= {"progress": told.text, "seconds_left": told.seconds_left, "reason": told.failure}
            print(json.dumps({**line, "flags": r.flags, "title": annotations.run_title(r), **_words(r)}))
        return 0
    if not runs:
        print(f"No runs in {workspace.models_dir()}; start one with python -m olr train --help.")
        return 0
    print(f"{'run id':<44} {'kind':<10} {'state':<10} {'epoch':>5}  {'backend':<10} dataset")
    for r in runs:
        epoch, backend = r.status.get("epoch", ""), launcher.recorded_backend(r, default="")
        print(f"{r.id:<44} {r.kind:<10} {r.state:<10} {epoch!s:>5}  {backend:<10} {r.dataset or ''}")
        for flag in r.flags:
            print(f"  warning: {flag['message']}")
        told = progress.describe(r)
        if r.is_live or told.failure:
            print(f"  {told.text}" if r.is_live else f"  reason: {told.failure}")
        words = annotations.read(r.path)
        if words.name or words.tags:
            print(f"  {words.name or annotations.default_run_name(r)}" + "".join(f"  #{t}" for t in words.tags))
    return 0


def _words(run: store.Run) -> dict:
    """A run's name, notes and tags (`olr.runs.annotations`) as JSON."""
    return annotations.read(run.path).to_json()
