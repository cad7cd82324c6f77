"""Warnings about data too thin to train or evaluate on, said at preparation, before any training.

`thin_data_warnings(...)` looks at a dataset's split, split blocks and label presence and
returns one sentence per problem: an empty split, a split of fewer than `MIN_SPLIT_TILES`
tiles, a validation or test split drawn from fewer than `MIN_SPLIT_BLOCKS` blocks, labels
without a positive tile in validation or test, and, when a thin validation or test split lost
tiles for lying too close to another split (`splits.separate_splits`), how many. meta.json
keeps them in "warnings" (`olr.data.dataset.write_dataset` adds them to a dataset written
without); the `prepare` and import commands print them (`print_warnings`) and the Datasets
page shows them. Nothing here refuses a dataset: a small one is still worth exploring.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from olr.data.splits import SPLITS

TITLES = {"train": "training", "val": "validation", "test": "test"}
#: Below this many tiles a split is thin: one tile is 2 % of it or more, so a label's recall or
#: precision over its few positive tiles jumps with each tile, and training on fewer learns little.
MIN_SPLIT_TILES = 50
#: Below this many blocks a validation or test split is thin: its tiles come from a few places, so
#: metrics depend on which places the seed chose and their intervals over blocks are wide.
MIN_SPLIT_BLOCKS = 10
#: The most label names one warning lists.
MAX_NAMES = 8
#: What an empty split prevents.
EMPTY_MEANS = {
    "train": "no model can be trained on this dataset",
    "val": "training has no validation tiles and refuses to start",
    "test": "runs cannot be evaluated on it",
}


@dataclass(frozen=True)
class Advice:
    """How each kind of warning ends: what helps, in the words (flags) of the command that made the dataset."""

    tiles: str = "a smaller tile size or a larger scene gives more"
    blocks: str = "smaller split blocks give more"
    labels: str = "another split seed, a coarser label scheme or pruning rare labels avoids it"
    separated: str = "larger split blocks or a smaller buffer between splits drop fewer"


def thin_data_warnings(
    split,
    presence,
    label_names: list[str],
    block_id=None,
    *,
    separated: dict[str, int] | None = None,
    advice: Advice = Advice(),
) -> list[str]:
    """One-sentence warnings about thin splits, in a fixed order (sizes, separation, blocks, labels).

    split: (N,) "train"/"val"/"test"; presence: (N, L) 0/1 with columns `label_names`;
    block_id: (N,) the split block of each tile (None: no block check); separated: validation
    and test tiles dropped for lying too close to another split, {"val": n, "test": m}.
    """
    split = np.asarray(split).astype(str)
    presence = np.asarray(presence).astype(bool).reshape(len(split), len(label_names))
    sizes = {name: int((split == name).sum()) for name in SPLITS}
    out = [_size_warning(name, sizes[name], len(split), advice) for name in SPLITS if sizes[name] < MIN_SPLIT_TILES]
    lost = {s: n for s, n in (separated or {}).items() if n > 0 and sizes[s] < MIN_SPLIT_TILES}
    if lost:
        counts = " and ".join(f"{n} {TITLES[s]}" for s, n in lost.items())
        out.append(
            f"Keeping the splits apart dropped {counts} tiles that shared pixels with or lay near a tile of "
            f"another split; {advice.separated}."
        )
    if block_id is not None:
        block_id = np.asarray(block_id)
        for name in ("val", "test"):
            blocks = len(np.unique(block_id[split == name]))
            if 0 < blocks < MIN_SPLIT_BLOCKS:
                out.append(
                    f"The {TITLES[name]} split comes from only {_count(blocks, 'split block')} (fewer than "
                    f"{MIN_SPLIT_BLOCKS}), so its metrics depend on those few places and their intervals will be "
                    f"wide; {advice.blocks}."
                )
    occurs = presence.any(0)
    for name in ("val", "test"):
        rows = split == name
        missing = [label_names[j] for j in np.flatnonzero(occurs & ~presence[rows].any(0))] if rows.any() else []
        if missing:
            shown = ", ".join(missing[:MAX_NAMES])
            if len(missing) > MAX_NAMES:
                shown += f" and {len(missing) - MAX_NAMES} more"
            verb, their = ("has", "its") if len(missing) == 1 else ("have", "their")
            out.append(
                f"{_count(len(missing), 'label')} {verb} no positive tile in the {TITLES[name]} split ({shown}), "
                f"so {their} {TITLES[name]} metrics are undefined; {advice.labels}."
            )
    return out


def _size_warning(name: str, n: int, total: int, advice: Advice) -> str:
    """The sentence for a split of n < MIN_SPLIT_TILES tiles (out of `total`)."""
    if n == 0:
        return f"The {TITLES[name]} split is empty ({total} tiles in all), so {EMPTY_MEANS[name]}; {advice.tiles}."
    consequence = "a model learns little from it" if name == "train" else "its metrics will be noisy"
    return (
        f"The {TITLES[name]} split holds only {_count(n, 'tile')} (fewer than {MIN_SPLIT_TILES}), so {consequence}; "
        f"{advice.tiles}."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def print_warnings(meta: dict, stream=None) -> None:
    """Print a dataset's warnings (meta["warnings"]) for a command, one "warning: ..." line each (stderr)."""
    for sentence in meta.get("warnings", []):
        print(f"warning: {sentence}", file=stream or sys.stderr, flush=True)
