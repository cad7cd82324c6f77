"""The options of dataset preparation, declared once: `PrepareOptions`.

Each field carries its default and, in its metadata (`Spec`), its range, help, page label
and how the CLI takes it. `prepare_dataset(...)` checks them (`PrepareOptions.check`), the
`python -m olr prepare` flags are made from them (`add_flags` / `from_args`), and the
Datasets page's "Add a dataset" form lays its inputs out from them (`fields()`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from olr.data import label_schemes, rasters, splits
from olr.errors import OLRError

MIN_TILE = 8
#: How a dataset of several scenes is split: blocks within each scene, or whole scenes (`olr.data.splits`).
SCENE_SPLITS = ("blocks", "scenes")


@dataclass(frozen=True)
class Spec:
    """How one preparation option is checked, shown and given on the command line."""

    help: str
    label: str  # on the Datasets page
    what: str = ""  # its name in an error message ("tile size"); empty: checked elsewhere
    fix: str = ""  # the advice in that message
    whole: bool = False  # must be an int (not merely convertible to one)
    min: float | None = None
    min_exclusive: bool = False
    max: float | None = None
    page_max: float | None = None  # upper bound of the page's number input (the library has none)
    step: float | None = None  # the page's number-input step
    choices: tuple = ()
    nargs: int | str | None = None  # several values on the command line ("+" or a count); None: one
    item: type = str  # the type of each of those values
    titles: dict = field(default_factory=dict, compare=False)  # choice -> words on the page


def _spec(**spec) -> dict:
    """A field's metadata: its Spec."""
    return {"spec": Spec(**spec)}


@dataclass(frozen=True)
class PrepareOptions:
    """How `prepare_dataset` tiles a scene; every field is also a `--flag` and an input of the page's form."""

    tile: int = field(
        default=64,
        metadata=_spec(
            help="tile size in pixels",
            label="Tile size (px)",
            what="tile size",
            fix=f"use a whole number of pixels, at least {MIN_TILE}",
            whole=True,
            min=MIN_TILE,
            page_max=1024,
            step=8,
        ),
    )
    stride: int | None = field(
        default=None,
        metadata=_spec(
            help="step between tiles in pixels (default: the tile size)",
            label="Stride (px, 0 = tile size)",
            what="stride",
            fix="use a whole number of pixels, at least 1",
            whole=True,
            min=1,
            page_max=1024,
            step=8,
        ),
    )
    scheme: str | dict | os.PathLike = field(
        default="level3",
        metadata=_spec(
            help=f"label scheme: {', '.join(label_schemes.SCHEME_NAMES)}, legend (the --legend's classes) "
            "or a JSON mapping file (grouping CLC codes, or a legend's class names or values)",
            label="Label scheme",
            titles=label_schemes.SCHEME_TITLES,
        ),
    )
    min_fraction: float = field(
        default=0.05,
        metadata=_spec(
            help="area fraction for a label to count as present",
            label="Min. area fraction for presence",
            what="min fraction",
            fix="use a number above 0 and at most 1 (e.g. 0.05)",
            min=0.0,
            min_exclusive=True,
            max=1.0,
            step=0.01,
        ),
    )
    min_labels: int = field(
        default=1,
        metadata=_spec(
            help="drop tiles with fewer present labels",
            label="Min. labels per tile",
            what="min labels",
            fix="use 0 or more",
            min=0,
            page_max=50,
        ),
    )
    max_nodata: float = field(
        default=0.1,
        metadata=_spec(
            help="drop tiles with a larger image-nodata share",
            label="Max. nodata share",
            what="max nodata share",
            fix="use a number from 0 to 1 (e.g. 0.1)",
            min=0.0,
            max=1.0,
            step=0.05,
        ),
    )
    prune_below: int = field(
        default=0,
        metadata=_spec(
            help="drop labels present in fewer tiles",
            label="Drop labels in fewer tiles than",
            what="prune threshold",
            fix="use 0 (no pruning) or more tiles",
            min=0,
            page_max=100000,
        ),
    )
    split_block: int = field(
        default=8,
        metadata=_spec(
            help="side of the square split blocks, in tiles (a block goes to one split; validation and test tiles "
            "sharing pixels with a tile of another split, as overlapping tiles can, are dropped)",
            label="Split block (tiles per side)",
            what="split block size",
            fix="use a whole number of tiles, at least 1",
            whole=True,
            min=1,
            page_max=1000,
        ),
    )
    split_buffer: int = field(
        default=0,
        metadata=_spec(
            help="gap between splits, in tile widths: validation and test tiles closer than this to a tile of "
            "another split are dropped (0: only those sharing pixels)",
            label="Split buffer (tile widths)",
            what="split buffer",
            fix="use a whole number of tile widths, 0 or more",
            whole=True,
            min=0,
            page_max=100,
        ),
    )
    split_fractions: tuple[float, float, float] = field(
        default=(0.7, 0.15, 0.15),
        metadata=_spec(help="target share of tiles per split", label="Train / validation / test share", step=0.05),
    )
    seed: int = field(
        default=0, metadata=_spec(help="seed of the block split", label="Split seed", min=0, page_max=2**31 - 1)
    )
    scene_split: str = field(
        default="blocks",
        metadata=_spec(
            help="with several scenes (--scenes): blocks = split blocks within each scene (no block spans two "
            "scenes), scenes = whole scenes go to one split each (needs a scene per split asked a share)",
            label="Split several scenes by",
            choices=SCENE_SPLITS,
            titles={"blocks": "blocks within each scene", "scenes": "whole scenes"},
        ),
    )
    label_encoding: str = field(
        default="auto",
        metadata=_spec(
            help="label raster values: grid codes 1..44, CLC codes 111..523, names from --legend, or auto "
            "(CLC codes, or grid codes when the raster carries CORINE's colour table, or the --legend)",
            label="Label raster values",
            choices=rasters.ENCODINGS,
            titles={
                "auto": "auto-detect (never guessed)",
                "grid": "grid codes 1..44",
                "clc": "CLC codes 111..523",
                "legend": "named by the legend file",
            },
        ),
    )
    legend: str | os.PathLike | None = field(
        default=None,
        metadata=_spec(
            help="legend of a land-cover map that is not CORINE: CSV value,name[,color][,clc_code] or JSON; "
            "with a clc_code for every value the CORINE schemes apply, without any its classes are the labels",
            label="Legend file (CSV or JSON; empty = CORINE codes)",
        ),
    )
    label_field: str | None = field(
        default=None,
        metadata=_spec(
            help="the attribute of a label vector holding the class (default Code_18, CORINE's)",
            label="Label field of a vector (empty = Code_18)",
        ),
    )
    label_nodata: str | float | None = field(
        default=None,
        metadata=_spec(
            help="the label value meaning no data, replacing the label raster's own, or none",
            label="Label nodata value (empty = as declared, none = no nodata)",
        ),
    )
    bands: tuple[str, ...] | None = field(
        default=None,
        metadata=_spec(
            help="bands to tile, in this order, by name or 1-based index, e.g. B04 B03 B02 B08 or 3 2 1 "
            "(default: all bands)",
            label="Bands (names or numbers, in order; empty = all)",
            nargs="+",
        ),
    )
    grid: str | None = field(
        default=None,
        metadata=_spec(
            help="with several band files: the file (or band name) whose pixel grid the stack takes "
            "(default: the finest file's)",
            label="Grid of the band file (empty = the finest)",
        ),
    )
    image_nodata: str | float | None = field(
        default=None,
        metadata=_spec(
            help="the image's nodata value, replacing the one it declares, or none (NaN and +-inf are nodata always)",
            label="Image nodata value (empty = as declared, none = no nodata)",
        ),
    )
    scale: tuple[float, ...] | None = field(
        default=None,
        metadata=_spec(
            help="reflectance = raw x scale + offset: one scale for all bands or one per band, recorded with the "
            "band statistics (default: the image's own scales)",
            label="Reflectance scale (one, or one per band)",
            nargs="+",
            item=float,
        ),
    )
    offset: tuple[float, ...] | None = field(
        default=None,
        metadata=_spec(
            help="reflectance offset: one for all bands or one per band (default: the image's own offsets)",
            label="Reflectance offset (one, or one per band)",
            nargs="+",
            item=float,
        ),
    )
    rgb: tuple[str, str, str] | None = field(
        default=None,
        metadata=_spec(
            help="the bands of the RGB preview, by name or 1-based index among the bands tiled "
            "(default: bands named red/green/blue or B04/B03/B02, else the first three)",
            label="Preview bands as R G B (empty = by name)",
            nargs=3,
        ),
    )
    overwrite: bool = field(
        default=False,
        metadata=_spec(help="replace an existing dataset of that name", label="Replace a dataset of that name"),
    )

    @property
    def stride_px(self) -> int:
        """The step between tiles in pixels (the tile size when `stride` is None)."""
        return self.tile if self.stride is None else self.stride

    def check(self) -> PrepareOptions:
        """These options with split fractions normalised; OLRError naming the first bad value."""
        for f in fields():
            spec = f.metadata["spec"]
            if spec.what:  # the stride checked is the one used
                value = self.stride_px if f.name == "stride" else getattr(self, f.name)
                _check_value(value, spec, value_type(f))
        rasters.images.nodata_override(self.image_nodata, "--image-nodata")  # a number or none
        rasters.label_nodata(self.label_nodata)  # a number or none
        if self.scene_split not in SCENE_SPLITS:
            raise OLRError(f"The scene split {self.scene_split!r} is not valid; use {' or '.join(SCENE_SPLITS)}.")
        return dataclasses.replace(self, split_fractions=splits.check_fractions(self.split_fractions))

    def parameters(self) -> dict:
        """The options as meta.json records them under "parameters" (stride resolved, scheme as text or mapping)."""
        return {
            "tile": self.tile,
            "stride": self.stride_px,
            "scheme": self.scheme if isinstance(self.scheme, dict) else str(self.scheme),
            "min_fraction": self.min_fraction,
            "min_labels": self.min_labels,
            "max_nodata": self.max_nodata,
            "prune_below": self.prune_below,
            "split_block": self.split_block,
            "split_buffer": self.split_buffer,
            "split_fractions": list(self.split_fractions),
            "seed": self.seed,
            "scene_split": self.scene_split,
            "label_encoding": self.label_encoding,
            "legend": None if self.legend is None else str(self.legend),
            "label_field": self.label_field,
            "label_nodata": self.label_nodata,
            "bands": None if self.bands is None else [str(b) for b in self.bands],
            "grid": self.grid,
            "image_nodata": self.image_nodata,
            "scale": None if self.scale is None else list(self.scale),
            "offset": None if self.offset is None else list(self.offset),
            "rgb": None if self.rgb is None else [str(b) for b in self.rgb],
            "overwrite": self.overwrite,
        }

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PrepareOptions:
        """The options given by `add_flags`' flags (each has its default there)."""
        values = {f.name: getattr(args, f.name) for f in fields()}
        values["split_fractions"] = tuple(values["split_fractions"])
        for f in fields():
            if f.metadata["spec"].nargs is not None and values[f.name] is not None:
                values[f.name] = tuple(values[f.name])
        return cls(**values)


def fields() -> tuple[dataclasses.Field, ...]:
    """The fields of PrepareOptions, in their order on the page and in --help."""
    return dataclasses.fields(PrepareOptions)


def spec(name: str) -> Spec:
    return next(f.metadata["spec"] for f in fields() if f.name == name)


def value_type(f: dataclasses.Field) -> type:
    """The type of a one-value field: int, float, bool or str (split_fractions, three floats, is handled by name)."""
    return {"int": int, "float": float, "bool": bool}.get(f.type.split(" |")[0], str)


def text_value(name: str, text: str | None):
    """The value of field `name` typed as text on the page: None when empty; several values split at
    spaces or commas ("B04 B03 B02", "0.0001, 0.0002"); OLRError when a number is not one."""
    text = (text or "").strip()
    if not text:
        return None
    s = spec(name)
    if s.nargs is None:
        return text
    items = [t for t in re.split(r"[\s,]+", text) if t]
    try:
        return tuple(s.item(t) for t in items)
    except ValueError:
        raise OLRError(
            f"The {s.label.split(' (')[0].lower()} {text!r} is not a list of numbers; give e.g. 0.0001, or one number "
            "per band separated by spaces."
        ) from None


def number_fields() -> list[dataclasses.Field]:
    """The fields holding one number, in their order."""
    return [f for f in fields() if value_type(f) in (int, float)]


def add_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None, note: str = "") -> None:
    """One `--name` flag per field of PrepareOptions (or of the fields `names`), its default the field's.

    Importers take a few of them (the split options), `note` added to each help text."""
    for f in fields():
        if names is not None and f.name not in names:
            continue
        s, flag = f.metadata["spec"], f"--{f.name.replace('_', '-')}"
        s = dataclasses.replace(s, help=s.help + note)
        if value_type(f) is bool:
            parser.add_argument(flag, action="store_true", help=s.help)
        elif s.nargs is not None:
            parser.add_argument(flag, nargs=s.nargs, type=s.item, default=f.default, help=s.help.replace("%", "%%"))
        elif f.name == "split_fractions":
            parser.add_argument(
                flag,
                type=float,
                nargs=3,
                default=f.default,
                metavar=("TRAIN", "VAL", "TEST"),
                help=f"{s.help} (default {' '.join(map(str, f.default))})",
            )
        else:
            default = "" if f.default is None else f" (default {f.default})"
            parser.add_argument(
                flag,
                type=value_type(f),
                default=f.default,
                choices=s.choices or None,
                help=(s.help + default).replace("%", "%%"),
            )


def _check_value(value: Any, spec: Spec, cast: type) -> None:
    """Raise the one-sentence OLRError of `spec` unless `value` is in its range."""
    ok = not spec.whole or isinstance(value, (int, np.integer))
    if ok:
        number = cast(value)
        ok = spec.min is None or (number > spec.min if spec.min_exclusive else number >= spec.min)
        ok = ok and (spec.max is None or number <= spec.max)
    if not ok:
        raise OLRError(f"The {spec.what} {value!r} is not valid; {spec.fix}.")
