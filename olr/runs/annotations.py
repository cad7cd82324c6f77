"""What people call a run or a dataset: a name, notes and tags, kept in `annotations.json` beside it.

Kept apart from config.json (what was trained) and meta.json (what was prepared), which describe the
thing itself and never change after it is written; annotations are the researcher's words about it
and can be edited at any time. A run or dataset without a name is shown by a readable default
("resnet · bce · demo · 14:02"), never by its id alone.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from olr import atomic, workspace
from olr.errors import OLRError
from olr.runs import store

FILE = "annotations.json"
MAX_NAME = 80
MAX_NOTES = 4000
MAX_TAG = 30
MAX_TAGS = 20
SEPARATOR = " · "


@dataclass(frozen=True)
class Annotations:
    name: str = ""
    notes: str = ""
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"name": self.name, "notes": self.notes, "tags": list(self.tags)}


def read(folder: str | os.PathLike) -> Annotations:
    """The annotations of a run or dataset folder; empty ones when there are none or the file is damaged
    (a damaged file loses only the words, never the run)."""
    data = store.read_json(Path(folder) / FILE)
    name = data.get("name") if isinstance(data.get("name"), str) else ""
    notes = data.get("notes") if isinstance(data.get("notes"), str) else ""
    raw_tags = data.get("tags") if isinstance(data.get("tags"), list) else []
    return Annotations(name=name, notes=notes, tags=tuple(t for t in raw_tags if isinstance(t, str)))


def parse_tags(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Tags from "a, b" or a list: trimmed, empty ones dropped, duplicates kept once, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    seen: dict[str, None] = {}
    for item in items:
        tag = " ".join(str(item).split())
        if tag:
            seen.setdefault(tag, None)
    return tuple(seen)


def check(name: str, notes: str, tags: tuple[str, ...]) -> None:
    """OLRError naming what is wrong with the words, or nothing."""
    if len(name) > MAX_NAME:
        raise OLRError(f"The name has {len(name)} characters; keep it to {MAX_NAME}.")
    if "\n" in name:
        raise OLRError("The name must be one line; put longer text in the notes.")
    if len(notes) > MAX_NOTES:
        raise OLRError(f"The notes have {len(notes)} characters; keep them to {MAX_NOTES}.")
    if len(tags) > MAX_TAGS:
        raise OLRError(f"There are {len(tags)} tags; keep it to {MAX_TAGS}.")
    long = [t for t in tags if len(t) > MAX_TAG]
    if long:
        raise OLRError(f"The tag {long[0]!r} is longer than {MAX_TAG} characters; shorten it.")


def write(
    folder: str | os.PathLike,
    *,
    name: str | None = None,
    notes: str | None = None,
    tags: str | list[str] | tuple[str, ...] | None = None,
) -> Annotations:
    """Change the given fields (None keeps a field as it is) and write the file atomically."""
    workspace.require_writable("rename, annotate or tag runs and datasets")
    folder = Path(folder)
    if not folder.is_dir():
        raise OLRError(f"There is no folder {folder.name!r} to annotate; it may have been deleted.")
    old = read(folder)
    new = Annotations(
        name=old.name if name is None else name.strip(),
        notes=old.notes if notes is None else notes.strip(),
        tags=old.tags if tags is None else parse_tags(tags),
    )
    check(new.name, new.notes, new.tags)
    atomic.write_json(folder / FILE, new.to_json())
    return new


def _clock(seconds: float | None) -> str:
    """14:02 for today, 2 Dec 14:02 for another day of this year, 2025-12-02 14:02 otherwise."""
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return ""
    when, now = time.localtime(seconds), time.localtime()
    if when[:3] == now[:3]:
        return time.strftime("%H:%M", when)
    if when.tm_year == now.tm_year:
        return time.strftime("%-d %b %H:%M", when)
    return time.strftime("%Y-%m-%d %H:%M", when)


def default_run_name(run) -> str:
    """A readable name from what the run is: "resnet · bce · demo · 14:02" for a classifier,
    "siamese · resnet · demo · 14:10" for a Siamese run (its trunk family), then its start time. A run that
    failed before writing its config is named from the launcher's request; one that says nothing of itself
    (no kind, dataset or start time) by its id, the only thing that tells it apart."""
    cfg = run.config or run.request
    if run.kind == "classifier":
        parts = [cfg.get("model") or "classifier", cfg.get("loss")]
    elif run.kind == "siamese":
        parts = ["siamese", cfg.get("trunk") or cfg.get("model")]
    else:
        parts = [run.kind if run.kind != "unknown" else None]
    parts += [run.dataset, _clock(run.status.get("started"))]
    return SEPARATOR.join(str(p) for p in parts if p) or run.id


def run_title(run) -> str:
    """How pages, pickers, legends and tables name a run: its name, else the readable default."""
    return read(run.path).name or default_run_name(run)


def matches(query: str, *texts: str) -> bool:
    """Whether every word of `query` occurs (case-insensitive) in one of `texts`."""
    haystack = " ".join(t for t in texts if t).casefold()
    return all(word in haystack for word in query.casefold().split())


def has_tags(words: Annotations, tags: Iterable[str]) -> bool:
    """Whether `words` carry every tag of `tags` (none asked: True); tags compare without case."""
    own = {t.casefold() for t in words.tags}
    return all(t.casefold() in own for t in tags)


def run_matches(run, query: str, tags: Iterable[str] = ()) -> bool:
    """Search over a run's id, name (or default name), notes, tags, kind and dataset; with `tags`, the run must
    also carry each of them."""
    words = read(run.path)
    return has_tags(words, tags) and matches(
        query, run.id, words.name or default_run_name(run), words.notes, *words.tags, run.kind, run.dataset or ""
    )


def run_titles(runs) -> dict[str, str]:
    """{run id: title} for runs shown together (a picker, a legend): `run_title`, and where two runs share a
    title, each followed by the end of its id ("resnet · bce · demo · 14:02 · f6df99"), so no two read alike."""
    titles = {run.id: run_title(run) for run in runs}
    title_counts = Counter(titles.values())
    tails = {run_id: run_id.rsplit("-", 1)[-1] for run_id in titles}
    tail_counts = Counter((title, tails[run_id]) for run_id, title in titles.items())

    def told_apart(run_id: str, title: str) -> str:
        if title_counts[title] == 1:
            return title
        return f"{title}{SEPARATOR}{tails[run_id] if tail_counts[title, tails[run_id]] == 1 else run_id}"

    return {run_id: told_apart(run_id, title) for run_id, title in titles.items()}


def dataset_title(name: str) -> str:
    """How pages name a dataset: the name given to it, else its folder name."""
    return read(workspace.dataset_path(name)).name or name


def dataset_matches(name: str, query: str, tags: Iterable[str] = ()) -> bool:
    """Search over a dataset's folder name, given name, notes and tags (and, with `tags`, each of them carried)."""
    words = read(workspace.dataset_path(name))
    return has_tags(words, tags) and matches(query, name, words.name, words.notes, *words.tags)


def tags_in_use(folders: Iterable[str | os.PathLike]) -> list[str]:
    """Every tag of these run or dataset folders, once each (the first spelling), sorted without case."""
    seen: dict[str, str] = {}
    for folder in folders:
        for tag in read(folder).tags:
            seen.setdefault(tag.casefold(), tag)
    return sorted(seen.values(), key=str.casefold)


# --- CLI: python -m olr annotate -----------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="RUN_OR_DATASET", help="a run id (python -m olr runs) or a dataset name")
    parser.add_argument(
        "--dataset", action="store_true", help="the target is a dataset (needed when a run has its name)"
    )
    parser.add_argument("--name", help=f"a readable name, one line of at most {MAX_NAME} characters ('' removes it)")
    parser.add_argument("--notes", help=f"free text, at most {MAX_NOTES} characters ('' removes them)")
    parser.add_argument(
        "--tags", help=f"comma-separated tags, replacing the current ones ('' removes them; at most {MAX_TAGS})"
    )
    parser.epilog = "Without --name, --notes or --tags it prints the current ones."


def target_folder(target: str, dataset: bool = False) -> Path:
    """The folder `target` names: a run of models/ or, with `dataset` or when no run has that id, a dataset of
    data/ (a folder with its meta.json); OLRError when neither exists or both do."""
    data = workspace.dataset_path(workspace.check_name(target, "run id or dataset name"))
    is_dataset = (data / "meta.json").is_file()
    if dataset:
        if not is_dataset:
            raise OLRError(f"There is no dataset {target!r}; list them with python -m olr datasets.")
        return data
    run = workspace.run_path(target)
    if run.is_dir() and is_dataset:
        raise OLRError(f"{target!r} is both a run and a dataset; add --dataset to mean the dataset.")
    if run.is_dir() or is_dataset:
        return run if run.is_dir() else data
    raise OLRError(
        f"There is no run or dataset {target!r}; list them with python -m olr runs and python -m olr datasets."
    )


def annotate_command(args) -> int:
    folder = target_folder(args.target, args.dataset)
    if args.name is None and args.notes is None and args.tags is None:
        words = read(folder)
    else:
        words = write(folder, name=args.name, notes=args.notes, tags=args.tags)
    what = "dataset" if folder.parent == workspace.data_dir() else "run"
    print(f"{what} {folder.name}")
    print(f"  name:  {words.name or '(none)'}")
    print(f"  tags:  {', '.join(words.tags) or '(none)'}")
    print(f"  notes: {words.notes or '(none)'}")
    return 0
