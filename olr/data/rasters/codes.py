"""Raw label values to code indices: a `LabelCoding` (CORINE grid codes, CLC codes, or a legend).

A *code index* is (h, w) uint8: 0 = no label, i = the i-th class code of the coding's
`classes` (CORINE: the CLC codes of `olr.data.label_schemes.ALL_CODES`, 1..44; a legend
without CLC codes: its values, `olr.data.legends`), and `unknown_index` (= len(classes) + 1)
for a value the coding does not cover, which the preparer refuses rather than guess.

`--label-encoding auto` never guesses: CLC codes 111..523 are unambiguous, but small values
that merely fit grid codes 1..44 count as CORINE only when the raster's colour table is
CORINE's (`auto_encoding`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from olr.data import label_schemes
from olr.data.label_schemes import short_repr
from olr.errors import OLRError

#: Number of code-index values of a CORINE source: 0 (no label) + the 44 CLC codes.
N_CODE_INDEX = len(label_schemes.ALL_CODES) + 1
ENCODINGS = ("auto", "grid", "clc", "legend")
#: How many values not covered an error message names.
NAMED_VALUES = 5


def value_text(v) -> str:
    """A raw value as written in a message: 12 rather than 12.0."""
    f = float(v)
    return str(int(f)) if f.is_integer() else short_repr(v, 20)


def values_text(values) -> str:
    vs = sorted(values, key=lambda v: (isinstance(v, str), v))
    text = ", ".join(value_text(v) if not isinstance(v, str) else short_repr(v, 20) for v in vs[:NAMED_VALUES])
    return text + (f" and {len(vs) - NAMED_VALUES} more" if len(vs) > NAMED_VALUES else "")


@dataclass(frozen=True, eq=False)
class LabelCoding:
    """How a label map's raw values become code indices.

    encoding: "grid" | "clc" | "legend"; classes: the class codes (code index i + 1 = classes[i]);
    class_of: raw value -> class code; no_label: raw values that mean "no label" (the declared
    nodata, CORINE's no-data values); legend_source: the legend file, for messages.
    """

    encoding: str
    classes: tuple[int, ...]
    class_of: dict
    no_label: tuple[float, ...] = ()
    legend_source: str = ""

    @property
    def n_code_index(self) -> int:
        """Code-index values of a class or of no label: 0..len(classes)."""
        return len(self.classes) + 1

    @property
    def unknown_index(self) -> int:
        return len(self.classes) + 1

    @cached_property
    def _index(self) -> dict[int, int]:
        position = {code: i + 1 for i, code in enumerate(self.classes)}
        return {raw: position[code] for raw, code in self.class_of.items()}

    @cached_property
    def _no_label(self) -> frozenset:
        return frozenset(float(v) for v in self.no_label if not math.isnan(v))

    def index_of(self, value) -> int:
        """The code index of one raw value (a number, or the text of a vector attribute)."""
        if value is None:
            return 0
        number = label_schemes.whole_number(value) if isinstance(value, str) else value
        if number is None:
            return self.unknown_index
        f = float(number)
        if math.isnan(f) or f in self._no_label:
            return 0
        return self._index.get(int(f), self.unknown_index) if f.is_integer() else self.unknown_index

    @cached_property
    def _int8_lut(self) -> np.ndarray:
        """(256,) uint8: code index of each int8 value, at the position of its bytes read as uint8."""
        values = np.arange(256, dtype=np.uint8).view(np.int8).tolist()
        return np.array([self.index_of(v) for v in values], dtype=np.uint8)

    def _lut(self, size: int) -> np.ndarray:
        lut = self.__dict__.setdefault("_luts", {}).get(size)
        if lut is None:
            lut = np.full(size, self.unknown_index, dtype=np.uint8)
            for raw, index in self._index.items():
                if 0 <= raw < size:
                    lut[raw] = index
            for v in self._no_label:
                if v.is_integer() and 0 <= v < size:
                    lut[int(v)] = 0
            self.__dict__["_luts"][size] = lut
        return lut

    def code_index(self, raw: np.ndarray) -> np.ndarray:
        """(h, w) raw label values -> (h, w) uint8 code indices (`unknown_index` for values not covered)."""
        if raw.dtype in (np.uint8, np.uint16):
            return self._lut(256 if raw.dtype == np.uint8 else 65536)[raw]
        if raw.dtype == np.int8:  # Copernicus CLC GeoTIFFs: int8, nodata -128
            return self._int8_lut[raw.view(np.uint8)]
        values, inverse = np.unique(raw, return_inverse=True)  # NaNs each stay apart: fine, they map to 0
        lookup = np.array([self.index_of(v) for v in values.tolist()], dtype=np.uint8)
        return lookup[inverse].reshape(raw.shape)

    def uncovered(self, path, values) -> OLRError:
        """The one-sentence error for raw `values` of the labels at `path` that this coding does not cover."""
        shown = values_text(values)
        nodata_fix = "or give --label-nodata VALUE if one of them means no data"
        if self.encoding == "legend":
            return OLRError(
                f"The labels {path} hold values that the legend {self.legend_source} does not name where they "
                f"overlap the image ({shown}); add them to the legend, {nodata_fix}."
            )
        what = "CORINE grid codes 1..44" if self.encoding == "grid" else "CORINE CLC codes 111..523"
        return OLRError(
            f"The labels {path} hold values that are not {what} where they overlap the image ({shown}); "
            f"give --legend FILE naming the map's classes, {nodata_fix}."
        )


def corine_coding(encoding: str, nodata: float | None = None) -> LabelCoding:
    """CORINE grid codes ("grid": 1..44) or CLC codes ("clc": 111..523) as a coding."""
    legend = label_schemes.legend()
    if encoding == "grid":
        class_of = {c.grid_code: c.code for c in legend}
        no_label = label_schemes.GRID_NODATA_VALUES
    else:
        class_of = {c.code: c.code for c in legend}
        no_label = label_schemes.CLC_NODATA_VALUES
    extra = () if nodata is None else (float(nodata),)
    return LabelCoding(encoding, label_schemes.ALL_CODES, class_of, tuple(map(float, no_label)) + extra)


def legend_coding(legend, nodata: float | None = None) -> LabelCoding:
    """An `olr.data.legends.Legend` as a coding: its values, to CLC codes or to themselves."""
    return LabelCoding(
        "legend", legend.class_codes, legend.class_code(), () if nodata is None else (float(nodata),), legend.source
    )


def to_code_index(raw: np.ndarray, encoding: str, nodata: float | None = None) -> np.ndarray:
    """(h, w) raw CORINE values (grid or CLC codes) -> (h, w) uint8 code indices, 0 for anything not a class."""
    coding = corine_coding(encoding, nodata)
    index = coding.code_index(raw)
    index[index == coding.unknown_index] = 0
    return index


def _valid_values(values: np.ndarray, nodata: float | None) -> np.ndarray:
    v = values[~np.isnan(values)] if values.dtype.kind == "f" else values.ravel()
    return v[v != nodata] if nodata is not None and not math.isnan(nodata) else v


def has_corine_colors(colormap: dict | None, values) -> bool:
    """Whether a colour table ({value: (r, g, b, a)}) gives each grid code in `values` CORINE's colour."""
    if not colormap:
        return False
    official = {c.grid_code: c.color for c in label_schemes.legend()}
    grid_values = [int(v) for v in values if int(v) in official]
    return bool(grid_values) and all(
        v in colormap and "#{:02x}{:02x}{:02x}".format(*colormap[v][:3]) == official[v] for v in grid_values
    )


def auto_encoding(path, sample: np.ndarray, nodata: float | None, colormap: dict | None) -> str | None:
    """The encoding of a label raster for `--label-encoding auto`, from a sample of its values.

    "clc" when CLC codes 111..523 are there (no grid code or no-data value is one); "grid" when
    every value is a grid code or a CORINE no-data value *and* the colour table is CORINE's; None
    when only no-data values are there. Otherwise OLRError naming the values and the flags that
    decide: small values may be grid codes or any other map's classes, and are not guessed.
    """
    present = np.unique(_valid_values(sample, nodata))
    if np.isin(present, label_schemes.ALL_CODES).any():
        return "clc"
    grid_codes = [c.grid_code for c in label_schemes.legend()]
    nodata_values = set(label_schemes.GRID_NODATA_VALUES) | set(label_schemes.CLC_NODATA_VALUES)
    classes = [v for v in present.tolist() if v not in nodata_values]
    if not classes:
        return None
    if all(v in grid_codes for v in classes):
        if has_corine_colors(colormap, classes):
            return "grid"
        raise OLRError(
            f"The labels {path} hold the values {values_text(classes)} where they overlap the image, which may be "
            "CORINE grid codes or another map's classes, and carry no CORINE colour table; pass --label-encoding "
            "grid if it is a CORINE grid-code map, or --legend FILE naming its classes otherwise."
        )
    raise OLRError(
        f"The labels {path} hold the values {values_text(classes)} where they overlap the image, which are not "
        "CORINE codes; give --legend FILE naming the map's classes (value,name per line)."
    )
