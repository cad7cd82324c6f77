"""CORINE Land Cover nomenclature and label schemes.

Facts come from `resources/clc_legend.csv` (the official legend): grid code (1..44, the
value stored in the CORINE raster) <-> CLC code (111..523) <-> names at three levels <->
official colour <-> BigEarthNet-19 class. A *scheme* maps CLC codes to output labels;
every mapping is by code, never by list position.

Schemes: `level3` (44 labels), `level2` (15), `level1` (5), `ben19` (BigEarthNet-19:
19 labels, 12 codes dropped), `thesis_c3` and `thesis_c5` (the thesis's combined
divisions, appendix C3 and C5), or a user mapping `{"label": [codes...]}` given as a
dict or a JSON file path.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from olr.errors import OLRError

LEGEND_CSV = Path(__file__).with_name("resources") / "clc_legend.csv"

#: Grid-code raster values that are not classes: 48 = NODATA, 49/50/255 = unclassified.
GRID_NODATA_VALUES = (0, 48, 49, 50, 255)
#: CLC-code values that are not classes: 999 = NODATA, 990/995 = unclassified land/water.
CLC_NODATA_VALUES = (0, 990, 995, 999)


@dataclass(frozen=True)
class ClcClass:
    grid_code: int
    code: int
    level1: str
    level2: str
    level3: str
    color: str  # "#rrggbb", official CORINE colour
    ben19: str | None
    ben19_index: int | None


@lru_cache(maxsize=1)
def legend() -> tuple[ClcClass, ...]:
    """All 44 CORINE level-3 classes, ordered by CLC code."""
    rows = []
    with open(LEGEND_CSV, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append(
                ClcClass(
                    grid_code=int(r["grid_code"]),
                    code=int(r["clc_code"]),
                    level1=r["label1"],
                    level2=r["label2"],
                    level3=r["label3"],
                    color=r["hex"].lower(),
                    ben19=r["ben19_name"] or None,
                    ben19_index=int(r["ben19_index"]) if r["ben19_index"] else None,
                )
            )
    return tuple(sorted(rows, key=lambda c: c.code))


@lru_cache(maxsize=1)
def by_code() -> dict[int, ClcClass]:
    return {c.code: c for c in legend()}


ALL_CODES: tuple[int, ...] = tuple(c.code for c in legend())


def grid_to_code_lut() -> np.ndarray:
    """Lookup table (256,) int16: grid code -> CLC code, 0 for anything that is not a class."""
    lut = np.zeros(256, dtype=np.int16)
    for c in legend():
        lut[c.grid_code] = c.code
    return lut


def code_to_grid(code: int) -> int:
    return by_code()[code].grid_code


# The thesis (appendix C3/C5) lists only the names of its combined labels. This is our
# reading of which codes each holds, consistent between the two divisions: C5 is CORINE
# level 1 with "Forest and semi-natural areas" split into vegetated (31x, 32x) and open
# rocky ground (33x), and wetlands merged with water; C3 further splits urban off
# "special sites" (ports, airports, mines, dumps, construction) and non-irrigated arable
# land off the rest of agriculture.
_URBAN = [111, 112, 121, 122, 141, 142]
_SPECIAL = [123, 124, 131, 132, 133]
_AGRI_OTHER = [212, 213, 221, 222, 223, 231, 241, 242, 243, 244]
_FOREST = [311, 312, 313, 321, 322, 323, 324]
_ROCKY = [331, 332, 333, 334, 335]
_WATER = [411, 412, 421, 422, 423, 511, 512, 521, 522, 523]

THESIS_C3 = {
    "Urban": _URBAN,
    "Special Sites": _SPECIAL,
    "Non-irrigated arable land": [211],
    "Agriculture": _AGRI_OTHER,
    "Forests": _FOREST,
    "Rocky / Mountainous areas": _ROCKY,
    "Bodies of water": _WATER,
}
THESIS_C5 = {
    "Urban": _URBAN + _SPECIAL,
    "Agriculture": [211, *_AGRI_OTHER],
    "Forests": _FOREST,
    "Rocky / Mountainous areas": _ROCKY,
    "Bodies of water": _WATER,
}

SCHEME_NAMES = ("level3", "level2", "level1", "ben19", "thesis_c3", "thesis_c5")
SCHEME_TITLES = {
    "level3": "CORINE level 3 (44 classes)",
    "level2": "CORINE level 2 (15 classes)",
    "level1": "CORINE level 1 (5 classes)",
    "ben19": "BigEarthNet-19 (19 classes, 12 codes dropped)",
    "thesis_c3": "Thesis combined division C3 (7 labels)",
    "thesis_c5": "Thesis combined division C5 (5 labels)",
    "legend": "The legend's classes (one label per entry)",  # a map read through a legend without CLC codes
}


def hex_rgba(colours, alpha: int = 255) -> np.ndarray:
    """(n, 4) uint8 RGBA of "#rrggbb" colours (a label's `color`), all of opacity `alpha` (0..255)."""
    rgb = [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours]
    out = np.full((len(rgb), 4), alpha, dtype=np.uint8)
    if rgb:
        out[:, :3] = rgb
    return out


@dataclass(frozen=True)
class Label:
    """One output label of a scheme: its name, the CLC codes it covers, its colour."""

    name: str
    codes: tuple[int, ...]
    color: str

    def to_json(self) -> dict:
        return {"name": self.name, "codes": list(self.codes), "color": self.color}

    @staticmethod
    def from_json(d: dict) -> Label:
        return Label(d["name"], tuple(int(c) for c in d.get("codes", ())), d.get("color", "#888888"))


@dataclass(frozen=True)
class Scheme:
    """A mapping from CLC codes to labels. Codes mapped to no label are *dropped*."""

    name: str
    labels: tuple[Label, ...]
    mapping: dict = field(default_factory=dict, compare=False)  # the user JSON, if any
    #: The class codes a label may hold: the CLC codes, or a legend's values (`olr.data.legends`).
    classes: tuple[int, ...] = field(default=ALL_CODES, compare=False)

    @property
    def dropped_codes(self) -> tuple[int, ...]:
        used = {c for lab in self.labels for c in lab.codes}
        return tuple(c for c in self.classes if c not in used)

    def code_matrix(self, codes) -> np.ndarray:
        """(len(codes), L) float32 0/1 matrix M so that label_fractions = code_fractions @ M."""
        codes = [int(c) for c in codes]
        m = np.zeros((len(codes), len(self.labels)), dtype=np.float32)
        index = {c: i for i, c in enumerate(codes)}
        for j, lab in enumerate(self.labels):
            for c in lab.codes:
                if c in index:
                    m[index[c], j] = 1.0
        return m

    def to_json(self) -> dict:
        d = {"name": self.name, "labels": [lab.to_json() for lab in self.labels]}
        if self.mapping:
            d["mapping"] = self.mapping
        return d


def _group(key) -> tuple[Label, ...]:
    groups: dict[str, list[ClcClass]] = {}
    for c in legend():
        k = key(c)
        if k is not None:
            groups.setdefault(k, []).append(c)
    # Colour of a merged label: the official colour of its first (lowest) code.
    return tuple(Label(name, tuple(c.code for c in cs), cs[0].color) for name, cs in groups.items())


#: Hand-written JSON (mappings, configs) larger than this is refused unread.
MAX_JSON_BYTES = 1_000_000
#: Longest label name accepted in a mapping (names end up in tables, charts and file names).
MAX_LABEL_NAME = 80


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise _DuplicateKey(f"the key {short_repr(k)} appears twice")
    return dict(pairs)


def _refuse_constant(word: str):
    raise ValueError(f"{word} is not a JSON number")


def short_repr(value, limit: int = 40) -> str:
    """`repr(value)` cut to `limit` characters, so a hostile value cannot flood a message."""
    if isinstance(value, int) and abs(value) >= 10**limit:
        return f"a {_digits(value)}-digit number"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _digits(value: int) -> str:
    try:
        return str(len(str(abs(value))))
    except ValueError:  # Python refuses to print more than sys.get_int_max_str_digits() digits
        return f"{sys.get_int_max_str_digits()}+"


def parse_json_strictly(text: str, what: str) -> object:
    """The JSON value in `text`, refusing what `json.loads` would accept but a person never means.

    Refused with one sentence naming `what`: more than `MAX_JSON_BYTES`, a duplicate key (json
    keeps the last silently), NaN/Infinity, numbers too long to convert, nesting too deep for
    the parser (RecursionError), invalid JSON.
    """
    if len(text) > MAX_JSON_BYTES:
        raise OLRError(f"{what} is larger than {MAX_JSON_BYTES // 1000} kB; give a smaller JSON file.")
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except RecursionError:
        raise OLRError(f"{what} is nested too deeply to read; give a flat JSON object.") from None
    except ValueError as e:  # JSONDecodeError, duplicate keys, constants, 4300+ digit numbers
        reason = str(e).split(";")[0][:120]
        raise OLRError(f"{what} is not valid JSON ({reason}); fix it and try again.") from None


def label_name(label, where: str) -> str:
    """`label` as a label name (stripped), or OLRError naming `where` ("mapping 'x'", "the legend f.csv")
    when it is blank, too long, or holds characters that cannot be written as one UTF-8 line."""
    text = str(label)
    if not text.strip():
        raise OLRError(f"A label in {where} has a blank name; give every label a name.")
    if len(text) > MAX_LABEL_NAME or any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise OLRError(
            f"The label name {short_repr(text)} in {where} is longer than {MAX_LABEL_NAME} characters "
            "or holds control characters or lone surrogates (not writable as UTF-8); give a short one-line name."
        )
    return text.strip()


def whole_number(value) -> int | None:
    """`value` as an int when it is a whole number (int, integral float, or digits with an optional
    sign, at most 10 of them), else None; bools are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        return int(text) if digits.isdigit() and digits.isascii() and len(digits) <= 10 else None
    return None


def _code(c, label: str, name: str, known: dict) -> int:
    """`c` as a known CLC code (OLRError otherwise): whole, finite, not a bool, in the legend."""
    ci = whole_number(c)
    if ci is None or ci not in known:
        raise OLRError(
            f"Label {label!r} in mapping {name!r} names the unknown CLC code {short_repr(c)}; "
            "use three-digit CORINE codes from 111 to 523 (see the legend)."
        )
    return ci


def _from_mapping(name: str, mapping: dict) -> Scheme:
    if not isinstance(mapping, dict) or not mapping:
        raise OLRError(
            f'The label mapping {name!r} must be a JSON object like {{"Urban": [111, 112]}}; fix it and try again.'
        )
    labels = []
    known = by_code()
    seen: dict[int, str] = {}
    names: set[str] = set()
    for raw_label, codes in mapping.items():
        label = label_name(raw_label, f"mapping {name!r}")
        if label in names:
            raise OLRError(f"The label {label!r} appears twice in mapping {name!r}; give each label one entry.")
        names.add(label)
        if not isinstance(codes, (list, tuple)) or not codes:
            raise OLRError(
                f"Label {label!r} in mapping {name!r} needs a non-empty list of CLC codes (e.g. [111, 112])."
            )
        clean = []
        for c in codes:
            ci = _code(c, label, name, known)
            if ci in seen:
                raise OLRError(
                    f"CLC code {ci} is mapped to both {seen[ci]!r} and {label!r} in {name!r}; map each code once."
                )
            seen[ci] = str(label)
            clean.append(ci)
        clean.sort()
        labels.append(Label(label, tuple(clean), known[clean[0]].color))
    return Scheme(name, tuple(labels), mapping={lab.name: list(lab.codes) for lab in labels})


def get_scheme(spec: str | dict | Path) -> Scheme:
    """Resolve a scheme name, a mapping dict, or a path to a JSON mapping file."""
    if isinstance(spec, dict):
        return _from_mapping("custom", spec)
    s = str(spec)
    if s == "level3":
        return Scheme("level3", tuple(Label(c.level3, (c.code,), c.color) for c in legend()))
    if s == "level2":
        return Scheme("level2", _group(lambda c: c.level2))
    if s == "level1":
        return Scheme("level1", _group(lambda c: c.level1))
    if s == "ben19":
        labels = _group(lambda c: c.ben19)
        order = {c.ben19: c.ben19_index for c in legend() if c.ben19}
        return Scheme("ben19", tuple(sorted(labels, key=lambda lab: order[lab.name])))
    if s in ("thesis_c3", "thesis_c5"):
        return _from_mapping(s, THESIS_C3 if s == "thesis_c3" else THESIS_C5)
    if is_mapping_file(s):
        return _from_mapping(Path(s).stem, read_mapping_file(s))
    raise OLRError(
        f"Unknown label scheme {short_repr(s)}; use one of {', '.join(SCHEME_NAMES)} or a JSON mapping file (*.json)."
    )


def is_mapping_file(spec) -> bool:
    """Whether a scheme spec names a JSON mapping file (rather than a scheme)."""
    return not isinstance(spec, dict) and Path(str(spec)).suffix.lower() == ".json"


def read_json_file(path: str | os.PathLike, what: str, example: str) -> object:
    """The JSON value of a hand-written file (`what`, e.g. "label mapping file"), read strictly
    (`parse_json_strictly`); one sentence when it is missing, not UTF-8 or not valid JSON.
    `example` completes "give ..." in the sentence for a missing file."""
    p = Path(path)
    if not p.is_file():
        raise OLRError(f"The {what} {path} does not exist; give {example}.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise OLRError(f"The {what} {path} is not UTF-8 text; save it as UTF-8 JSON.") from None
    return parse_json_strictly(text, f"The {what} {path}")


def read_mapping_file(path: str | os.PathLike) -> object:
    """The JSON value of a label mapping file, read strictly."""
    return read_json_file(path, "label mapping file", 'a JSON file like {"Urban": [111, 112]}')


def prune_mask(presence: np.ndarray, min_count: int) -> np.ndarray:
    """Boolean (L,) mask of labels present in at least `min_count` tiles."""
    return np.asarray(presence).astype(bool).sum(axis=0) >= int(min_count)
