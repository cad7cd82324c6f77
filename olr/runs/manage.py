"""Deleting runs, studies and datasets: what a deletion would break, asked first, then done atomically.

A deletion is planned (`run_deletion`, `dataset_deletion`), shown to the person (its `question` and
`warning`), then carried out (`delete`). Refused with one sentence: in read-only mode, for a live run
(stop it first), for a classifier a live Siamese run trains against, for a dataset a live run trains
on. What other runs need is named and only deleted on purpose (`even_if_used`): the Siamese runs of a
classifier (config "classifier_run") cannot be evaluated or resumed without it; the runs trained on a
dataset keep their results but cannot be evaluated again.

Atomic for readers: the folder is first renamed into the hidden trash folder beside it
(`models/.trash/`, `data/.trash/`), which every listing skips, then removed; a deletion killed
half-way leaves only hidden leftovers, which the next deletion removes. No TensorFlow, no Streamlit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from olr import workspace
from olr.errors import OLRError
from olr.runs import annotations, store

#: the hidden folder inside models/ and data/ that deleted folders pass through
TRASH = ".trash"
#: what the read-only refusal says cannot be done
ACTION = "delete runs or datasets"


@dataclass(frozen=True)
class Deletion:
    """One planned deletion: a run (a study is one too) or a dataset, and the runs that need it."""

    what: str  # "run", "study" or "dataset"
    name: str  # the run id or dataset name
    title: str  # how people know it (`annotations.run_title`, `annotations.dataset_title`)
    folder: Path
    kind: str = ""  # a run's kind ("classifier", "siamese", ...)
    dependents: tuple[str, ...] = ()  # ids of the runs that need it

    @property
    def label(self) -> str:
        """ "the classifier run “resnet · bce · demo · 14:02” (20261202-011821-classifier-f6df99)"."""
        kind = f"{self.kind} run" if self.what == "run" and self.kind not in ("", "unknown") else self.what
        shown = f"“{self.title}”" + (f" ({self.name})" if self.title != self.name else "")
        return f"the {kind} {shown}"

    @property
    def question(self) -> str:
        return f"Delete {self.label}? Its folder and everything in it are removed; this cannot be undone."

    @property
    def warning(self) -> str | None:
        """What deleting it breaks, in one sentence; None when nothing else needs it."""
        if not self.dependents:
            return None
        runs = ", ".join(self.dependents)
        if self.what == "dataset":
            return (
                f"{len(self.dependents)} run(s) were trained on this dataset ({runs}); they keep their results, "
                "but cannot be evaluated again or resumed without it."
            )
        return (
            f"{len(self.dependents)} Siamese run(s) depend on this classifier ({runs}); they cannot be evaluated "
            "again or resumed without it."
        )


def _request(run: store.Run) -> dict:
    """A run's config, or the launcher's request while its process has written none (a queued run)."""
    return run.config or run.request


def siamese_runs_of(classifier_id: str, runs: list[store.Run] | None = None) -> list[store.Run]:
    """The runs whose config names `classifier_id` as their classifier run."""
    runs = store.list_runs() if runs is None else runs
    return [r for r in runs if r.id != classifier_id and _request(r).get("classifier_run") == classifier_id]


def runs_on_dataset(name: str, runs: list[store.Run] | None = None) -> list[store.Run]:
    """The runs (and studies) whose config names the dataset `name`."""
    runs = store.list_runs() if runs is None else runs
    return [r for r in runs if _request(r).get("dataset") == name]


def _refuse_live(users: list[store.Run], what: str) -> None:
    live = [r for r in users if r.is_live]
    if live:
        ids = ", ".join(r.id for r in live)
        raise OLRError(f"{what} is in use by the live run(s) {ids}; stop them first (Stop on the Train page).")


def run_deletion(run_id: str) -> Deletion:
    """The deletion of run (or study) `run_id`, with the Siamese runs that need it; OLRError (one sentence) when
    it cannot be deleted: read-only, missing, or live (its own process or a Siamese run training against it)."""
    workspace.require_writable(ACTION)
    run = store.load_run(run_id)  # validates the id; OLRError when there is no such run
    title = annotations.run_title(run)
    if run.is_live:
        raise OLRError(
            f"The run {run.id} is still {run.state}; stop it first (Stop on the Train page), then delete it."
        )
    users = siamese_runs_of(run.id)
    _refuse_live(users, f"The classifier run {run.id}")
    what = "study" if run.is_study else "run"
    return Deletion(what, run.id, title, run.path, run.kind, tuple(r.id for r in users))


def dataset_deletion(name: str) -> Deletion:
    """The deletion of dataset `name`, with the runs trained on it; OLRError when read-only, missing or in use by
    a live run."""
    workspace.require_writable(ACTION)
    folder = workspace.dataset_path(name)
    if not (folder / "meta.json").is_file():
        raise OLRError(f"There is no dataset {name!r}; list them with python -m olr datasets.")
    users = runs_on_dataset(name)
    _refuse_live(users, f"The dataset {name}")
    return Deletion("dataset", name, annotations.dataset_title(name), folder, dependents=tuple(r.id for r in users))


def delete(deletion: Deletion, *, even_if_used: bool = False) -> None:
    """Carry out `deletion` (planned again now, so a run that went live or a new dependent meanwhile refuses).

    With dependents, only when `even_if_used`. The folder is renamed into the trash (readers see it whole or
    not at all), then removed."""
    fresh = dataset_deletion(deletion.name) if deletion.what == "dataset" else run_deletion(deletion.name)
    if fresh.dependents and not even_if_used:
        raise OLRError(f"Not deleted: {fresh.warning} Confirm that you want it deleted even so.")
    trash = fresh.folder.parent / TRASH
    _empty(trash)
    trash.mkdir(exist_ok=True)
    target = trash / f"{fresh.folder.name}.{secrets.token_hex(4)}"
    try:
        os.rename(fresh.folder, target)
    except FileNotFoundError:
        raise OLRError(f"{fresh.label[:1].upper()}{fresh.label[1:]} is already gone.") from None
    except OSError as error:
        raise OLRError(f"Could not delete {fresh.label} ({error.strerror}); check the folder's permissions.") from None
    shutil.rmtree(target, ignore_errors=True)


def _empty(trash: Path) -> None:
    """Remove what earlier deletions left in the trash (one killed while removing)."""
    if trash.is_dir():
        for leftover in trash.iterdir():
            with contextlib.suppress(OSError):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()


# --- CLI: python -m olr delete -------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", nargs="?", metavar="RUN", help="the id of the run or study to delete (python -m olr runs)"
    )
    parser.add_argument("--dataset", metavar="NAME", help="delete this dataset instead of a run")
    parser.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed when not at a terminal)"
    )
    parser.add_argument(
        "--even-if-used",
        action="store_true",
        help="delete a classifier that Siamese runs depend on, or a dataset that runs were trained on",
    )


def delete_command(args) -> int:
    if bool(args.run) == bool(args.dataset):
        raise OLRError("Name one thing to delete: a run id, or --dataset NAME.")
    deletion = dataset_deletion(args.dataset) if args.dataset else run_deletion(args.run)
    if deletion.warning and not args.even_if_used:
        raise OLRError(f"Not deleted: {deletion.warning} Add --even-if-used to delete it even so.")
    if not args.yes:
        if not sys.stdin.isatty():
            raise OLRError(
                f"Not deleted: deleting {deletion.label} needs confirmation; add --yes when not at a terminal."
            )
        if deletion.warning:
            print(f"warning: {deletion.warning}")
        answer = input(f"{deletion.question} [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    delete(deletion, even_if_used=args.even_if_used)
    print(f"Deleted {deletion.label}.")
    return 0
