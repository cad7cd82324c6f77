"""Train/validation/test splits by blocks of tiles, never by single tiles.

Neighbouring tiles look alike and share labels, so a random per-tile split leaks. Tiles
are grouped into blocks (square blocks of the tile grid for a scene; runs of consecutive
tiles for imports without coordinates) and whole blocks are assigned to splits: blocks are
visited in an order shuffled by `seed`, each going to the split furthest below its target
tile count. Same blocks + same seed => same split.

A dataset of several scenes is split either by blocks within each scene (`scene_blocks`: no
block spans two scenes) or by whole scenes (`assign_scenes`: every tile of a scene in one split).

Blocks alone do not keep splits apart when tiles overlap (stride < tile): a tile on a block's
edge shares pixels with its neighbour across the edge. `separate_splits` then drops the
validation and test tiles that share pixels with, or lie within an optional buffer of, a tile
of an earlier split (train before validation before test), so no pixel is in two splits.
"""

from __future__ import annotations

import numpy as np

from olr.errors import OLRError

SPLITS = ("train", "val", "test")
#: Which splits' tiles a split must keep clear of: validation of training, test of both.
KEEPS_CLEAR_OF = {"val": ("train",), "test": ("train", "val")}


def check_fractions(fractions) -> tuple[float, float, float]:
    """Normalise (train, val, test) fractions; they must be three non-negative numbers, train > 0."""
    try:
        f = [float(x) for x in fractions]
    except (TypeError, ValueError):
        f = []
    if len(f) != 3 or any(x < 0 or not np.isfinite(x) for x in f) or f[0] <= 0:
        raise OLRError(
            f"The split fractions {fractions!r} are not valid; give three non-negative numbers "
            "for train, val and test with train > 0, e.g. 0.7 0.15 0.15."
        )
    total = sum(f)
    return tuple(x / total for x in f)  # type: ignore[return-value]


def spatial_blocks(tile_rows: np.ndarray, tile_cols: np.ndarray, block: int) -> np.ndarray:
    """(N,) int64 block id of each tile: square blocks of `block` x `block` tiles of the grid."""
    if int(block) < 1:
        raise OLRError(f"The split block size {block} must be at least 1 tile.")
    r = np.asarray(tile_rows, dtype=np.int64) // int(block)
    c = np.asarray(tile_cols, dtype=np.int64) // int(block)
    n_cols = int(c.max()) + 1 if c.size else 1
    return r * n_cols + c


def scene_blocks(scene: np.ndarray, tile_rows: np.ndarray, tile_cols: np.ndarray, block: int) -> np.ndarray:
    """(N,) int64 block id of each tile: `spatial_blocks` of each scene's own tile grid (`scene` (N,) int,
    the tile's scene), numbered apart per scene so that no block spans two scenes. The ids of the first
    scene's blocks are those of `spatial_blocks`, so one scene splits as it always has."""
    scene = np.asarray(scene, dtype=np.int64)
    block_id = np.zeros(len(scene), dtype=np.int64)
    offset = 0
    for s in np.unique(scene):
        rows = np.flatnonzero(scene == s)
        ids = spatial_blocks(np.asarray(tile_rows)[rows], np.asarray(tile_cols)[rows], block)
        block_id[rows] = ids + offset
        offset += int(ids.max()) + 1
    return block_id


def wanted_splits(fractions) -> list[str]:
    """The splits asked a share above 0 of `fractions` (train, val, test)."""
    return [s for s, f in zip(SPLITS, check_fractions(fractions)) if f > 0]


def require_scenes_for_splits(n_scenes: int, fractions) -> None:
    """OLRError unless `n_scenes` scenes can give every split asked a share (`wanted_splits`) a whole scene."""
    wanted = wanted_splits(fractions)
    if n_scenes < len(wanted):
        raise OLRError(
            f"Whole-scene splits need a scene for each of {', '.join(wanted)}, so at least {len(wanted)} scenes "
            f"with tiles, and there {'is' if n_scenes == 1 else 'are'} {n_scenes}; give more scenes, set a "
            "split's share to 0 in --split-fractions, or split by blocks within scenes (--scene-split blocks)."
        )


def assign_scenes(scene: np.ndarray, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> np.ndarray:
    """(N,) split name per tile; every tile of a scene (`scene` (N,) int) in one split, balanced by tile count.

    Scenes are taken in a seeded random order; each goes to the split with the largest shortfall against
    `fractions` x N, except that once there are only as many scenes left as splits asked a share that have
    none, each of those gets one: with enough scenes, no split asked for is empty (OLRError when too few).
    """
    fractions = np.asarray(check_fractions(fractions))
    unique, inverse, sizes = np.unique(np.asarray(scene), return_inverse=True, return_counts=True)
    require_scenes_for_splits(len(unique), fractions)
    targets = fractions * len(inverse)
    counts = np.zeros(3)
    wanted = fractions > 0
    empty = wanted.copy()
    choice = np.zeros(len(unique), dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(unique))
    for left, b in zip(range(len(unique), 0, -1), order):
        open_splits = empty if left <= empty.sum() else wanted
        s = int(np.argmax(np.where(open_splits, targets - counts, -np.inf)))
        choice[b], empty[s] = s, False
        counts[s] += sizes[b]
    return np.asarray(SPLITS, dtype=object)[choice[inverse]]


def contiguous_blocks(n: int, block: int) -> np.ndarray:
    """(n,) int64 block id of each tile: runs of `block` consecutive tiles."""
    if int(block) < 1:
        raise OLRError(f"The split block size {block} must be at least 1 tile.")
    return np.arange(int(n), dtype=np.int64) // int(block)


def assign_blocks(block_ids: np.ndarray, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> np.ndarray:
    """(N,) split name per tile; whole blocks go to one split, balanced by tile count.

    Blocks are taken in a seeded random order; each goes to the split with the largest
    shortfall against `fractions` x N (splits asked 0 get nothing).
    """
    fractions = np.asarray(check_fractions(fractions))
    block_ids = np.asarray(block_ids)
    unique, inverse, sizes = np.unique(block_ids, return_inverse=True, return_counts=True)
    targets = fractions * len(block_ids)
    counts = np.zeros(3)
    wanted = fractions > 0
    choice = np.zeros(len(unique), dtype=np.int64)
    for b in np.random.default_rng(seed).permutation(len(unique)):
        shortfall = np.where(wanted, targets - counts, -np.inf)
        s = int(np.argmax(shortfall))
        choice[b] = s
        counts[s] += sizes[b]
    return np.asarray(SPLITS, dtype=object)[choice[inverse]]


def split_counts(splits: np.ndarray) -> dict[str, int]:
    splits = np.asarray(splits)
    return {s: int((splits == s).sum()) for s in SPLITS}


def reach(tile: int, stride: int, buffer: int = 0) -> int:
    """Grid steps within which two tiles of the grid (`tile` px, `stride` px apart) are closer than
    `buffer` tile widths (0: share a pixel), in both directions; their gap is then < buffer x tile px."""
    return -(-(1 + int(buffer)) * int(tile) // int(stride)) - 1


def near(tile_rows: np.ndarray, tile_cols: np.ndarray, members: np.ndarray, steps: int) -> np.ndarray:
    """(N,) bool: a tile of `members` (N,) bool lies within `steps` grid steps of the tile, in both rows
    and columns (a square window of the tile grid; the tile itself counts).

    Counts members in each window with a summed-area table of the grid's occupancy, so the cost
    does not grow with `steps`."""
    rows, cols = np.asarray(tile_rows, dtype=np.int64), np.asarray(tile_cols, dtype=np.int64)
    members = np.asarray(members, dtype=bool)
    if not members.any():
        return np.zeros(len(rows), dtype=bool)
    steps = max(0, int(steps))
    shape = (int(rows.max()) + 1 + 2 * steps, int(cols.max()) + 1 + 2 * steps)
    occupied = np.zeros((shape[0] + 1, shape[1] + 1), dtype=np.int32)  # a leading zero row and column
    occupied[rows[members] + steps + 1, cols[members] + steps + 1] = 1
    table = occupied.cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32)
    top, left, bottom, right = rows, cols, rows + 2 * steps + 1, cols + 2 * steps + 1
    return (table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]) > 0


def separate_splits(
    tile_rows: np.ndarray, tile_cols: np.ndarray, split: np.ndarray, tile: int, stride: int, buffer: int = 0
) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """(keep (N,) bool, dropped counts) for tiles at grid positions (tile_rows, tile_cols) with `split` (N,).

    A validation tile is dropped when it shares a pixel with a training tile or lies closer than
    `buffer` tile widths to one; a test tile likewise for training and the validation tiles kept.
    Training tiles are never dropped. Counts: {"overlap": {"val": n, "test": m}, "buffer": {...}},
    "overlap" for tiles sharing pixels, "buffer" for the others dropped only by the buffer.
    """
    split = np.asarray(split)
    keep = np.ones(len(split), dtype=bool)
    overlap_steps, buffer_steps = reach(tile, stride), reach(tile, stride, buffer)
    dropped = {"overlap": {}, "buffer": {}}
    for name, earlier in KEEPS_CLEAR_OF.items():
        others = np.isin(split, earlier) & keep
        mine = split == name
        too_close = mine & near(tile_rows, tile_cols, others, buffer_steps)
        sharing = too_close & near(tile_rows, tile_cols, others, overlap_steps)
        keep &= ~too_close
        dropped["overlap"][name] = int(sharing.sum())
        dropped["buffer"][name] = int((too_close & ~sharing).sum())
    return keep, dropped
