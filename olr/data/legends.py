"""Legends of land-cover maps that are not CORINE: a file naming each raw value of the map.

A legend file is CSV with the header `value,name[,color][,clc_code]`, or JSON: a list of
`{"value", "name", "color"?, "clc_code"?}` objects, or an object `{value: {"name", "color"?,
"clc_code"?}}` (or `{value: name}`). `value` is a whole number (a raster's pixel value, or the
value of a vector's label field), `color` "#rrggbb", `clc_code` a CORINE code 111..523.

Two kinds of legend, never mixed in one file:

- every entry has a CLC code: the map's values are translated to CLC codes (several values may
  share a code), the dataset is CORINE-coded and every CORINE scheme applies;
- no entry has one: the legend's entries are the classes. Their *class code* is the raw value;
  the dataset's scheme is `legend` (one label per entry, with its name and colour; a distinct
  colour is made for an entry without one), and a user mapping groups entries by name or value,
  e.g. `{"Forest": ["Conifer", "Broadleaf"]}`. CORINE schemes are refused for such a dataset.

`meta.json["legend"]` keeps the entries (`Legend.to_json`), so a dataset's schemes can be
rebuilt from the dataset alone (`scheme_for`).
"""

from __future__ import annotations

import colorsys
import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from olr.data import label_schemes
from olr.data.label_schemes import Label, Scheme, label_name, short_repr, whole_number
from olr.errors import OLRError

#: The scheme name of a legend's own classes.
LEGEND_SCHEME = "legend"
#: The columns (CSV) or keys (JSON) of a legend entry.
LEGEND_COLUMNS = ("value", "name", "color", "clc_code")
#: Most classes a legend without CLC codes may have: a code index is one byte, with room for
#: "no label" and "a value the legend does not name".
MAX_LEGEND_CLASSES = 253
#: Raw values a legend may name: a 32-bit signed integer.
VALUE_RANGE = (-(2**31), 2**31 - 1)
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class LegendClass:
    """One entry of a legend: a raw value of the map, its name, its colour, its CLC code."""

    value: int
    name: str
    color: str | None = None  # "#rrggbb"
    clc_code: int | None = None

    def to_json(self) -> dict:
        d = {"value": self.value, "name": self.name}
        if self.color:
            d["color"] = self.color
        if self.clc_code is not None:
            d["clc_code"] = self.clc_code
        return d


@dataclass(frozen=True)
class Legend:
    """A parsed legend. `source` names its file in messages."""

    source: str
    classes: tuple[LegendClass, ...]

    @property
    def clc_coded(self) -> bool:
        """Whether the values translate to CLC codes (then the CORINE schemes apply)."""
        return self.classes[0].clc_code is not None

    @property
    def class_codes(self) -> tuple[int, ...]:
        """The class space: the 44 CLC codes, or the legend's values in its order."""
        return label_schemes.ALL_CODES if self.clc_coded else tuple(c.value for c in self.classes)

    def class_code(self) -> dict[int, int]:
        """Raw value -> class code (its CLC code, or the value itself)."""
        return {c.value: c.clc_code if self.clc_coded else c.value for c in self.classes}

    def to_json(self) -> list[dict]:
        return [c.to_json() for c in self.classes]

    @staticmethod
    def from_json(entries: list, source: str = "meta.json") -> Legend:
        return _checked(source, [_entry(source, e, i + 1) for i, e in enumerate(entries)])


def read_legend(path: str | os.PathLike) -> Legend:
    """The legend in a CSV or JSON file; OLRError (one sentence naming the file and the fix) when it
    is unreadable, names a value twice, has a blank name, a bad colour or an unknown CLC code, or
    mixes entries with and without CLC codes."""
    path = Path(path)
    if not path.is_file():
        raise OLRError(f"The legend {path} does not exist; give a CSV (value,name[,color][,clc_code]) or JSON file.")
    if path.stat().st_size > label_schemes.MAX_JSON_BYTES:
        raise OLRError(
            f"The legend {path} is larger than {label_schemes.MAX_JSON_BYTES // 1000} kB; give a smaller legend file."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise OLRError(f"The legend {path} is not UTF-8 text; save it as UTF-8 CSV or JSON.") from None
    source = str(path)
    if path.suffix.lower() == ".json":
        rows = _json_rows(source, label_schemes.parse_json_strictly(text, f"The legend {path}"))
    else:
        try:
            rows = _csv_rows(source, text)
        except csv.Error as e:  # NUL bytes, a field over the csv module's limit, a stray quote
            raise OLRError(f"The legend {source} is not readable CSV ({e}); save it as plain UTF-8 CSV.") from None
    return _checked(source, [_entry(source, row, i) for i, row in rows])


def _csv_rows(source: str, text: str) -> list[tuple[int, dict]]:
    """(line number, {column: text}) of the non-blank rows of a CSV legend."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    unknown = [h for h in header if h not in LEGEND_COLUMNS]
    if "value" not in header or "name" not in header or unknown or len(set(header)) < len(header):
        raise OLRError(
            f"The legend {source} has the header {short_repr(','.join(header), 60)}; "
            "start it with the line value,name (optionally also color and clc_code), each column once."
        )
    rows = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise OLRError(
                f"Line {reader.line_num} of the legend {source} has more cells than its header; "
                "quote names that hold commas."
            )
        rows.append((reader.line_num, dict(zip(header, row))))
    return rows


def _json_rows(source: str, data) -> list[tuple[int, dict]]:
    """(entry number, entry) of a JSON legend (a list of entries, or an object keyed by value)."""
    if isinstance(data, dict):
        data = [
            {"value": value, **(entry if isinstance(entry, dict) else {"name": entry})} for value, entry in data.items()
        ]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise OLRError(
            f'The legend {source} must be a JSON list like [{{"value": 1, "name": "Forest"}}] '
            f'or an object like {{"1": {{"name": "Forest"}}}}; fix it and try again.'
        )
    return list(enumerate(data, 1))


def _entry(source: str, row: dict, where: int) -> LegendClass:
    """One checked legend entry (`where`: its line or entry number, for messages)."""
    unknown = [k for k in row if k not in LEGEND_COLUMNS]
    if unknown:
        raise OLRError(
            f"Entry {where} of the legend {source} has the unknown key {short_repr(unknown[0])}; "
            f"use only {', '.join(LEGEND_COLUMNS)}."
        )
    value = whole_number(row.get("value"))
    if value is None or not VALUE_RANGE[0] <= value <= VALUE_RANGE[1]:
        raise OLRError(
            f"Entry {where} of the legend {source} has the value {short_repr(row.get('value'))}; "
            "give each class's raw value of the map as a whole number."
        )
    name = label_name(row.get("name") or "", f"the legend {source}")
    color = _blank_to_none(row.get("color"))
    if color is not None and not (isinstance(color, str) and _COLOR.fullmatch(color.strip())):
        raise OLRError(
            f"The colour {short_repr(color)} of {name!r} in the legend {source} is not valid; "
            "write colours as #rrggbb (e.g. #1a9850) or leave them out."
        )
    clc = _blank_to_none(row.get("clc_code"))
    code = None
    if clc is not None:
        code = whole_number(clc)
        if code not in label_schemes.by_code():
            raise OLRError(
                f"The CLC code {short_repr(clc)} of {name!r} in the legend {source} is not a CORINE code; "
                "use a three-digit code from 111 to 523 or leave clc_code out."
            )
    return LegendClass(value, name, color.strip().lower() if color else None, code)


def _blank_to_none(v):
    return None if v is None or (isinstance(v, str) and not v.strip()) else v


def _checked(source: str, classes: list[LegendClass]) -> Legend:
    """The legend of `classes`, refusing an empty one, a value named twice, a mix of entries with and
    without CLC codes, and (without CLC codes) a name given twice or too many classes."""
    if not classes:
        raise OLRError(f"The legend {source} names no class; add one line per value of the map (value,name).")
    seen: dict[int, str] = {}
    for c in classes:
        if c.value in seen:
            raise OLRError(
                f"The legend {source} names the value {c.value} twice ({seen[c.value]!r} and {c.name!r}); "
                "give each value one line."
            )
        seen[c.value] = c.name
    with_code = [c.clc_code is not None for c in classes]
    if any(with_code) and not all(with_code):
        missing = next(c for c in classes if c.clc_code is None)
        raise OLRError(
            f"The legend {source} gives CLC codes for some values but not for {missing.name!r}; "
            "give a clc_code for every value, or for none."
        )
    if not all(with_code):
        names = [c.name for c in classes]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice is not None:
            raise OLRError(
                f"The legend {source} names the class {twice!r} twice; give each class its own name "
                "(group classes later with a JSON mapping)."
            )
        if len(classes) > MAX_LEGEND_CLASSES:
            raise OLRError(
                f"The legend {source} has {len(classes)} classes, more than the {MAX_LEGEND_CLASSES} supported; "
                "merge classes in the legend."
            )
    return Legend(source, tuple(classes))


# --------------------------------------------------------------------------- schemes over a legend


def distinct_colors(n: int, taken: set[str] = frozenset()) -> list[str]:
    """`n` "#rrggbb" colours, well apart in hue (golden-ratio steps) and not in `taken`."""
    out: list[str] = []
    k = 0
    while len(out) < n:
        r, g, b = colorsys.hsv_to_rgb((0.13 + 0.618034 * k) % 1.0, 0.6 + 0.3 * (k % 2), 0.85 - 0.2 * (k // 2 % 2))
        color = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
        if color not in taken and color not in out:
            out.append(color)
        k += 1
    return out


def class_colors(legend: Legend) -> dict[int, str]:
    """Value -> colour of each class: its own, or a distinct generated one."""
    given = {c.value: c.color for c in legend.classes if c.color}
    made = iter(distinct_colors(len(legend.classes) - len(given), set(given.values())))
    return {c.value: given.get(c.value) or next(made) for c in legend.classes}


def legend_scheme(legend: Legend) -> Scheme:
    """One label per class of a legend without CLC codes (codes: the class's value)."""
    colors = class_colors(legend)
    labels = tuple(Label(c.name, (c.value,), colors[c.value]) for c in legend.classes)
    return Scheme(LEGEND_SCHEME, labels, classes=legend.class_codes)


def scheme_for(spec, legend: Legend | None) -> Scheme:
    """The scheme `spec` over a dataset's classes: CORINE schemes (`label_schemes.get_scheme`) when
    `legend` is None or CLC-coded; otherwise `legend` (or `level3`: each class its own label), a user
    mapping grouping the legend's classes by name or value (a dict or a JSON file), and OLRError for
    the schemes that group CORINE codes."""
    if legend is None or legend.clc_coded:
        return label_schemes.get_scheme(spec)
    if isinstance(spec, dict):
        return _legend_mapping("custom", spec, legend)
    s = str(spec)
    if s in (LEGEND_SCHEME, "level3"):
        return legend_scheme(legend)
    if label_schemes.is_mapping_file(s):
        return _legend_mapping(Path(s).stem, label_schemes.read_mapping_file(s), legend)
    if s in label_schemes.SCHEME_NAMES:
        raise OLRError(
            f"The label scheme {s!r} groups CORINE codes, but these labels come from the legend {legend.source} "
            f'without CLC codes; use the scheme "legend" or a JSON mapping grouping its classes, '
            f'e.g. {{"Forest": ["Conifer", "Broadleaf"]}}.'
        )
    return label_schemes.get_scheme(s)  # its sentence for an unknown name


def scheme_names(legend: Legend | None) -> tuple[str, ...]:
    """The named schemes that apply to a dataset with this legend (None: a CORINE dataset)."""
    return label_schemes.SCHEME_NAMES if legend is None or legend.clc_coded else (LEGEND_SCHEME,)


def encoding_text(meta: dict) -> str:
    """How a dataset's label values were read, in words (from its meta.json)."""
    encoding = meta.get("label_encoding")
    if encoding == "grid":
        return "CORINE grid codes (1..44)"
    if encoding == "clc":
        return "CORINE CLC codes (111..523)"
    if encoding == "legend" and meta.get("legend"):
        entries = meta["legend"]
        source = (meta.get("parameters") or {}).get("legend") or "legend"
        mapped = ", mapped to CLC codes" if entries[0].get("clc_code") is not None else ""
        return f"the values named by the legend {Path(source).name} ({len(entries)} entries{mapped})"
    return "not recorded (an imported dataset)"


def _first(names: list[str], k: int = 6) -> str:
    return ", ".join(map(repr, names[:k])) + (", …" if len(names) > k else "")


def _legend_mapping(name: str, mapping, legend: Legend) -> Scheme:
    """A user mapping {label: [class names or values]} over a legend's classes."""
    where = f"mapping {name!r}"
    if not isinstance(mapping, dict) or not mapping:
        raise OLRError(
            f'The label mapping {name!r} must be a JSON object like {{"Forest": ["Conifer", "Broadleaf"]}}; '
            "fix it and try again."
        )
    by_name = {c.name: c.value for c in legend.classes}
    values = {c.value for c in legend.classes}
    colors = class_colors(legend)
    seen: dict[int, str] = {}
    labels = []
    for raw_label, members in mapping.items():
        label = label_name(raw_label, where)
        if any(lab.name == label for lab in labels):
            raise OLRError(f"The label {label!r} appears twice in {where}; give each label one entry.")
        if not isinstance(members, (list, tuple)) or not members:
            raise OLRError(
                f"Label {label!r} in {where} needs a non-empty list of the legend's class names or values "
                '(e.g. ["Conifer", "Broadleaf"]).'
            )
        group = []
        for m in members:
            value = by_name.get(m) if isinstance(m, str) else None
            if value is None:
                value = whole_number(m)
            if value not in values:
                raise OLRError(
                    f"Label {label!r} in {where} names {short_repr(m)}, which is neither a class name nor a value "
                    f"of the legend {legend.source}; use its names ({_first(list(by_name))}) or values."
                )
            if value in seen:
                raise OLRError(
                    f"The legend class {value} is mapped to both {seen[value]!r} and {label!r} in {where}; "
                    "map each class once."
                )
            seen[value] = label
            group.append(value)
        labels.append(Label(label, tuple(group), colors[group[0]]))
    return Scheme(
        name, tuple(labels), mapping={lab.name: list(lab.codes) for lab in labels}, classes=legend.class_codes
    )
