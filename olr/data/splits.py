"""Train/validation/test splits by blocks of tiles, never by single tiles.

Neighbouring tiles look alike and share labels, so a random per-tile split leaks. Tiles
are grouped into blocks (square blocks of the tile grid for a scene; runs of consecutive
tiles for imports without coordinates) and whole blocks are assigned to splits: blocks are
visited in an order shuffled by `seed`, each going to the split furthest below its target
tile count. Same blocks + same seed => same split.
"""

from __future__ import annotations

import numpy as np

from olr.errors import OLRError

SPLITS = ("train", "val", "test")


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
