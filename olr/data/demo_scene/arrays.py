"""Array primitives of the scene generator: smooth noise, bilinear sampling, chamfer distances,
a majority filter, patch labelling and a position hash. Pure numpy; deterministic."""

from __future__ import annotations

import math

import numpy as np

from olr.data.demo_scene.spec import CELL_M


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_cells: float) -> np.ndarray:
    """Gaussian-filtered white noise (FFT), normalised to mean 0, std 1; float32 (shape).

    Wide filters are computed on a coarser grid (about 4 cells per sigma) and upsampled
    bilinearly: the result is equally smooth and costs a fraction of the time.
    """
    factor = max(1, int(sigma_cells // 4))
    if factor > 1:
        small = (shape[0] // factor + 3, shape[1] // factor + 3)
        coarse = smooth_noise(rng, small, sigma_cells / factor)
        out = upsample_rows(coarse, np.arange(shape[0]) / factor + 1, np.arange(shape[1]) / factor + 1)
        out -= out.mean()
        return (out / (out.std() + 1e-12)).astype(np.float32)
    pad = int(min(3 * sigma_cells, 256))
    h, w = shape[0] + 2 * pad, shape[1] + 2 * pad
    white = rng.standard_normal((h, w))
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    gain = np.exp(-2.0 * (math.pi * sigma_cells) ** 2 * (kx**2 + ky**2))
    out = np.fft.irfft2(np.fft.rfft2(white) * gain, s=(h, w))[pad : pad + shape[0], pad : pad + shape[1]]
    out -= out.mean()
    return (out / (out.std() + 1e-12)).astype(np.float32)


def cell_and_offset(shape: tuple[int, int], fx: np.ndarray, fy: np.ndarray):
    """(ix, iy, ax, ay): the upper-left cell of fractional cell coordinates (fx column, fy row),
    clamped so its right and lower neighbours exist, and the float32 offsets into it."""
    h, w = shape
    fx = np.clip(fx, 0, w - 1.001)
    fy = np.clip(fy, 0, h - 1.001)
    ix = fx.astype(np.int64)
    iy = fy.astype(np.int64)
    return ix, iy, (fx - ix).astype(np.float32), (fy - iy).astype(np.float32)


def bilinear(field: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Sample `field` (H, W) at fractional cell coordinates (fx column, fy row), clamped."""
    ix, iy, ax, ay = cell_and_offset(field.shape, fx, fy)
    top = field[iy, ix] * (1 - ax) + field[iy, ix + 1] * ax
    bottom = field[iy + 1, ix] * (1 - ax) + field[iy + 1, ix + 1] * ax
    return top * (1 - ay) + bottom * ay


def upsample_rows(field: np.ndarray, pos_rows: np.ndarray, pos_cols: np.ndarray) -> np.ndarray:
    """Separable bilinear sampling of `field` (..., H, W) on a regular grid of positions.

    pos_rows (h,), pos_cols (w,) are fractional cell coordinates; returns (..., h, w).
    """
    h, w = field.shape[-2:]
    pr = np.clip(pos_rows, 0, h - 1.001)
    pc = np.clip(pos_cols, 0, w - 1.001)
    r0 = pr.astype(np.int64)
    c0 = pc.astype(np.int64)
    ar = (pr - r0).astype(np.float32)[:, None]
    ac = (pc - c0).astype(np.float32)
    rows = field[..., r0, :] * (1 - ar) + field[..., r0 + 1, :] * ar
    return np.ascontiguousarray(rows[..., c0] * (1 - ac) + rows[..., c0 + 1] * ac)


def distance_m(mask: np.ndarray, cap_m: float, cell_m: float = CELL_M) -> np.ndarray:
    """Chamfer distance (metres, 8-neighbour) from every cell to the nearest True cell, capped."""
    big = np.float32(cap_m)
    d = np.where(mask, np.float32(0.0), big).astype(np.float32)
    diag = np.float32(cell_m * math.sqrt(2.0))
    for _ in range(int(cap_m / cell_m) + 2):
        prev = d
        p = np.pad(d, 1, mode="edge")
        d = np.minimum.reduce(
            [
                d,
                p[:-2, 1:-1] + cell_m,
                p[2:, 1:-1] + cell_m,
                p[1:-1, :-2] + cell_m,
                p[1:-1, 2:] + cell_m,
                p[:-2, :-2] + diag,
                p[:-2, 2:] + diag,
                p[2:, :-2] + diag,
                p[2:, 2:] + diag,
            ]
        )
        d = np.minimum(d, big)
        if np.array_equal(d, prev):
            break
    return d


def majority(codes: np.ndarray, classes: list[int], passes: int = 2) -> np.ndarray:
    """3x3 majority filter over `classes` (a minimum-mapping-unit clean-up), ties keep the cell."""
    out = codes.copy()
    for _ in range(passes):
        counts = []
        for c in classes:
            p = np.pad((out == c).astype(np.int8), 1)
            counts.append(sum(p[i : i + out.shape[0], j : j + out.shape[1]] for i in range(3) for j in range(3)))
        counts = np.stack(counts)
        best = np.asarray(classes)[counts.argmax(0)]
        own = np.zeros(out.shape, np.int8)
        for k, c in enumerate(classes):
            own = np.where(out == c, counts[k], own)
        change = np.isin(out, classes) & (counts.max(0) > own)
        out = np.where(change, best, out)
    return out


def smoothstep(e0: float, e1: float, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def hash01(a, b, salt: int) -> np.ndarray:
    """Deterministic uniform [0, 1) float32 per integer pair (vectorised integer hash)."""
    with np.errstate(over="ignore"):
        h = np.asarray(a).astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)
        h ^= np.asarray(b).astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)
        h ^= np.uint32((salt * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x2C1B3C6D)
        h ^= h >> np.uint32(12)
        h *= np.uint32(0x297A2D39)
        h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def segment_distance(px, py, seg: np.ndarray) -> np.ndarray:
    """Distance (metres) from points (px, py) to the nearest of the segments (S, 4)."""
    best = np.full(np.shape(px), np.inf, dtype=np.float32)
    for x1, y1, x2, y2 in seg:
        dx, dy = x2 - x1, y2 - y1
        t = np.clip(((px - x1) * dx + (py - y1) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
        best = np.minimum(best, np.hypot(px - (x1 + t * dx), py - (y1 + t * dy)))
    return best


def patch_labels(mask: np.ndarray) -> np.ndarray:
    """8-connected patches of `mask`: an id per cell (0 outside), by neighbour-minimum spreading."""
    big = np.int64(mask.size + 1)
    ids = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), big)
    h, w = mask.shape
    while True:
        p = np.pad(ids, 1, constant_values=big)
        spread = np.minimum.reduce([p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)])
        spread = np.where(mask, spread, big)
        if np.array_equal(spread, ids):
            return np.where(mask, ids, 0)
        ids = spread
