"""Raw label values to code indices: CORINE grid codes (1..44) or CLC codes (111..523), detected or given.

A *code index* is (h, w) uint8: 0 = no label, i = the i-th CLC code of
`olr.data.label_schemes.ALL_CODES` (1..44).
"""

from __future__ import annotations

import math

import numpy as np

from olr.data import label_schemes

#: Number of code-index values: 0 (no label) + the 44 CLC codes.
N_CODE_INDEX = len(label_schemes.ALL_CODES) + 1
ENCODINGS = ("auto", "grid", "clc")


def _code_index_lut(encoding: str, size: int, nodata: float | None) -> np.ndarray:
    """(size,) uint8: raw label value -> code index (0 = no label)."""
    lut = np.zeros(size, dtype=np.uint8)
    index = {code: i + 1 for i, code in enumerate(label_schemes.ALL_CODES)}
    for c in label_schemes.legend():
        raw = c.grid_code if encoding == "grid" else c.code
        if raw < size:
            lut[raw] = index[c.code]
    if nodata is not None and not math.isnan(nodata) and 0 <= nodata < size and float(nodata).is_integer():
        lut[int(nodata)] = 0
    return lut


def to_code_index(raw: np.ndarray, encoding: str, nodata: float | None = None) -> np.ndarray:
    """(h, w) raw label values (grid or CLC codes) -> (h, w) uint8 code indices."""
    if raw.dtype == np.uint8:
        return _code_index_lut(encoding, 256, nodata)[raw]
    if raw.dtype == np.uint16:
        return _code_index_lut(encoding, 65536, nodata)[raw]
    # Other dtypes: anything outside 0..max code maps to the last entry, which is 0.
    size = (max(label_schemes.ALL_CODES) if encoding == "clc" else 255) + 2
    lut = _code_index_lut(encoding, size, nodata)
    values = np.nan_to_num(raw.astype(np.float64, copy=False), nan=-1.0) if raw.dtype.kind == "f" else raw
    return lut[np.clip(values, -1, size - 1).astype(np.intp) % size]


def detect_encoding(values: np.ndarray, nodata: float | None = None) -> str | None:
    """'grid' or 'clc' from a sample of raw label values (whichever has more valid pixels), or None."""
    v = values[~np.isnan(values)] if values.dtype.kind == "f" else values.ravel()
    if nodata is not None:
        v = v[v != nodata]
    n_grid = int(np.isin(v, [c.grid_code for c in label_schemes.legend()]).sum())
    n_clc = int(np.isin(v, label_schemes.ALL_CODES).sum())
    if n_grid == 0 and n_clc == 0:
        return None
    return "clc" if n_clc > n_grid else "grid"
