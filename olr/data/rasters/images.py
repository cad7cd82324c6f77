"""Opening the image raster, naming, choosing and ordering its bands, telling its nodata pixels,
and finding its red, green and blue bands.

Bands are chosen by 1-based index or by name (`image_bands`); names come from the raster's
band descriptions (`band_names`). A pixel is nodata when its bands equal the nodata value
(the image's own or `--image-nodata`), when the GDAL mask says so, and always when one of its
bands is NaN or +-inf (`ImageMask`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from olr.data.label_schemes import short_repr
from olr.data.rasters.read_errors import check_exists
from olr.data.rasters.user_files import check_local_path, open_raster
from olr.errors import OLRError

#: Band names of the thesis's batch format (a documented RGBN order; `thesis_import` only). A GeoTIFF
#: whose bands carry neither descriptions nor a colour interpretation gets "band 1".."band n": its band
#: order is not guessed (PlanetScope's 4 bands are blue, green, red, NIR; an RGBN aerial image's are not).
DEFAULT_BAND_NAMES = {1: ["gray"], 3: ["red", "green", "blue"], 4: ["red", "green", "blue", "nir"]}


def open_image(path: str | os.PathLike) -> rasterio.DatasetReader:
    """Open the image raster; it must be a georeferenced GeoTIFF (CRS and geotransform).

    Only the GeoTIFF driver may open it (`user_files`): a ".tif" of VRT XML could read any
    file of the server or fetch URLs."""
    path = check_local_path(path, "image")
    check_exists(path, "image")
    try:
        src = open_raster(path)
    except RasterioIOError:
        raise OLRError(
            f"The image {path} is not a raster this app reads (only GeoTIFF is accepted); "
            "convert it with gdal_translate -of GTiff and try again."
        ) from None
    if src.crs is None:
        src.close()
        raise OLRError(
            f"The image {path} has no coordinate reference system; assign one "
            "(e.g. gdal_edit.py -a_srs EPSG:32636) and try again."
        )
    if src.transform == Affine.identity():
        src.close()
        raise OLRError(
            f"The image {path} has no geotransform (pixel size and origin); georeference it "
            "(e.g. gdal_edit.py -a_ullr) and try again."
        )
    return src


#: Band names (canonical: lower case, Sentinel-2's "B04" as "b4") recognised as red, green and blue.
#: "b4/b3/b2" are Sentinel-2's (and Landsat 8's) red, green and blue.
RGB_NAMES = (("red", "r", "b4"), ("green", "g", "b3"), ("blue", "b", "b2"))


def image_bands(src: rasterio.DatasetReader, requested: Sequence[str | int] | None = None) -> list[int]:
    """1-based indexes of the bands to tile: all of them, or `requested` (names or 1-based indexes) in its order.

    A band flagged "alpha" stays a band: GDAL flags the 4th band of any 4-band uint8
    GeoTIFF as alpha by default, which would silently drop the NIR of RGBN imagery.
    """
    if not requested:
        return list(src.indexes)
    names = band_names(src)
    positions = [band_position(token, names, src.name, "--bands") for token in requested]
    require_distinct(positions, names, "--bands")
    return [src.indexes[p] for p in positions]


def band_names(src: rasterio.DatasetReader, bands: list[int] | None = None) -> list[str]:
    """Names of `bands` (default: all): the raster's descriptions, else its colour interpretation, else "band i".

    Names are those of the whole image, so choosing bands never renames them."""
    names = _all_band_names(src)
    return names if bands is None else [names[list(src.indexes).index(i)] for i in bands]


def _all_band_names(src: rasterio.DatasetReader) -> list[str]:
    desc = list(src.descriptions)
    if all(desc) and len(set(desc)) == len(desc):
        return desc
    interp = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue", ColorInterp.alpha: "alpha"}
    names = [interp.get(c) for c in src.colorinterp]
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"band {i + 1}" for i in range(src.count)]


def canonical_band_name(name: str) -> str:
    """A band name as compared: lower case, surrounding space dropped, Sentinel-2's "B04" as "b4"."""
    text = str(name).strip().lower()
    match = re.fullmatch(r"b0*(\d+a?)", text)
    return f"b{match.group(1)}" if match else text


def band_position(token: str | int, names: list[str], image: str, flag: str) -> int:
    """0-based position in `names` of a band given by name (case-insensitive; B4 = B04) or 1-based index.

    OLRError naming the bands there are when there is no such band."""
    key = canonical_band_name(str(token))
    found = [i for i, n in enumerate(names) if canonical_band_name(n) == key]
    if len(found) == 1:
        return found[0]
    text = str(token).strip()
    if not found and text.isdigit() and 1 <= int(text) <= len(names):
        return int(text) - 1
    listing = ", ".join(f"{i + 1} {n}" for i, n in enumerate(names))
    raise OLRError(
        f"The image {image} has no band {text!r} (its bands are {listing}); give {flag} band names or 1-based "
        "indexes from these."
    )


def require_distinct(positions: list[int], names: list[str], flag: str) -> None:
    twice = next((names[p] for k, p in enumerate(positions) if p in positions[:k]), None)
    if twice is not None:
        raise OLRError(f"{flag} names the band {twice} twice; give each band once.")


def rgb_positions(names: list[str], chosen: Sequence[str | int] | None = None, image: str = "the image") -> dict:
    """The bands shown as red, green and blue: {"positions": 3 indexes into `names`, "bands": their names, "by": how}.

    `chosen` (`--rgb`: 3 names or 1-based indexes among `names`) first; else the bands named
    red/green/blue (Sentinel-2's B04/B03/B02 included); else the first three bands, or one
    band as grey; "by" says which, so a false-colour preview is never a silent guess.
    """
    if chosen:
        if len(chosen) != 3:
            raise OLRError(
                f"--rgb takes three bands (red, green, blue), not {len(chosen)}; give e.g. --rgb B04 B03 B02."
            )
        positions = [band_position(token, names, image, "--rgb") for token in chosen]
        by = "--rgb"
    else:
        canonical = [canonical_band_name(n) for n in names]
        found = [next((i for i, n in enumerate(canonical) if n in aliases), None) for aliases in RGB_NAMES]
        if all(p is not None for p in found):
            positions, by = [int(p) for p in found], "band names"
        elif len(names) >= 3:
            positions, by = [0, 1, 2], "first three bands"
        else:
            positions, by = [0, 0, 0], "first band as grey"
    return {"positions": positions, "bands": [names[p] for p in positions], "by": by}


def nodata_override(value: str | float | None, flag: str) -> tuple[bool, float | None]:
    """(given, value) of a nodata option, `--image-nodata` or `--label-nodata` (`flag`, named in the message).

    None -> not given; "none" -> given, no value means no data; a finite number -> given, that value.
    NaN and +-inf are refused: they are nodata always and cannot be declared as a value.
    """
    if value is None:
        return False, None
    if isinstance(value, str) and value.strip().lower() == "none":
        return True, None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        what = flag.removeprefix("--").removesuffix("-nodata")  # "image" or "label"
        raise OLRError(
            f"The {what} nodata {short_repr(value)} is not a number or none; give the {what} value that means no data "
            f"(e.g. {flag} 0), or {flag} none when no {what} value means no data."
        )
    return True, number


def band_scaling(
    src: rasterio.DatasetReader,
    bands: list[int],
    scale: Sequence[float] | None = None,
    offset: Sequence[float] | None = None,
) -> list[tuple[float, float]]:
    """(scale, offset) per band: physical value = raw * scale + offset (GDAL's convention).

    From `scale` / `offset` (one value for all bands or one per band) where given, else from the
    raster's own scales and offsets (1 and 0 when it declares none)."""
    own_scale = [float(src.scales[i - 1]) for i in bands]
    own_offset = [float(src.offsets[i - 1]) for i in bands]
    return list(zip(_per_band(scale, own_scale, "--scale"), _per_band(offset, own_offset, "--offset"), strict=True))


def _per_band(values: Sequence[float] | None, own: list[float], flag: str) -> list[float]:
    if not values:
        return own
    if len(values) not in (1, len(own)):
        raise OLRError(
            f"{flag} gives {len(values)} values for {len(own)} bands; give one value for all bands or one per band."
        )
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        raise OLRError(f"{flag} {' '.join(map(str, values))} holds a value that is not a finite number; give numbers.")
    return numbers * len(own) if len(numbers) == 1 else numbers


@dataclass
class ImageMask:
    """How to tell image nodata pixels.

    A nodata `value` (a pixel whose bands all equal it), a GDAL mask, per-band values (a
    pixel is nodata when any band equals its value: the band files of a stack each have
    their own footprint), or none; and for float images always: a pixel with a band that
    is NaN or +-inf (`finite`), whatever the declared nodata.
    """

    kind: str  # "none" | "value" | "mask" | "band_values"
    value: float | None = None
    band_values: tuple[float | None, ...] = ()
    finite: bool = False  # float pixels: non-finite bands make a pixel nodata

    @staticmethod
    def of(src: rasterio.DatasetReader, bands: list[int], override: str | float | None = None) -> ImageMask:
        finite = np.dtype(src.dtypes[bands[0] - 1]).kind in "fc"
        given, value = nodata_override(override, "--image-nodata")
        per_band = bool(getattr(src, "nodata_any_band", False))  # a stack of band files
        if given:
            if value is None:
                return ImageMask("none", finite=finite)
            if per_band:
                return ImageMask("band_values", band_values=(value,) * len(bands), finite=finite)
            return ImageMask("value", value, finite=finite)
        if per_band:
            values = tuple(src.nodatavals[i - 1] for i in bands)
            kind = "band_values" if any(v is not None for v in values) else "none"
            return ImageMask(kind, band_values=values, finite=finite)
        if src.nodata is not None:
            return ImageMask("value", float(src.nodata), finite=finite)
        flags = src.mask_flag_enums[bands[0] - 1]
        if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
            return ImageMask("mask", finite=finite)  # an internal or .msk mask (an alpha band stays data)
        return ImageMask("none", finite=finite)

    def describe(self) -> float | list | str | None:
        """The nodata rule as meta.json records it ("nodata")."""
        if self.kind == "value":
            return None if math.isnan(self.value) else self.value
        if self.kind == "band_values":
            return [None if v is None or math.isnan(v) else v for v in self.band_values]
        return "mask" if self.kind == "mask" else None

    def pixels(self, src: rasterio.DatasetReader, window: Window, pixels: np.ndarray) -> np.ndarray | None:
        """(h, w) bool, True where the image has no data; None when every pixel is valid.

        `pixels` is the window already read, (h, w, b).
        """
        out = self._declared(src, window, pixels)
        if self.finite:
            bad = ~np.isfinite(pixels).all(-1)
            if bad.any():
                out = bad if out is None else out | bad
        return out

    def _declared(self, src, window: Window, pixels: np.ndarray) -> np.ndarray | None:
        if self.kind == "none":
            return None
        if self.kind == "mask":
            return src.dataset_mask(window=window) == 0
        if self.kind == "band_values":
            out = None
            for k, value in enumerate(self.band_values):
                if value is not None and _can_hold(pixels.dtype, value):
                    hit = np.isnan(pixels[..., k]) if math.isnan(value) else pixels[..., k] == value
                    out = hit if out is None else out | hit
            return out
        h, w, b = pixels.shape
        value = self.value
        if math.isnan(value):
            out = np.isnan(pixels[..., 0])
            for k in range(1, b):
                out &= np.isnan(pixels[..., k])
            return out
        if not _can_hold(pixels.dtype, value):
            return None  # the nodata value cannot occur in this dtype
        width = b * pixels.dtype.itemsize
        if width in (1, 2, 4, 8) and pixels.flags.c_contiguous:
            # A pixel is nodata when all its bands equal the value: compare each pixel's
            # bytes at once (one pass over the window instead of one per band).
            pattern = np.full(b, value, dtype=pixels.dtype).view(f"u{width}")[0]
            return pixels.view(f"u{width}").reshape(h, w) == pattern
        out = pixels[..., 0] == value
        for k in range(1, b):
            out &= pixels[..., k] == value
        return out


def _can_hold(dtype: np.dtype, value: float) -> bool:
    """Whether pixels of `dtype` can equal `value` (an integer image cannot hold -1.5 or NaN)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return math.isfinite(value) and info.min <= value <= info.max and float(value).is_integer()
    return True
