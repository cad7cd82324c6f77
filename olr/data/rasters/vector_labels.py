"""Label vectors aligned onto the image grid: read in a child process, rasterised per window.

The label is an attribute: CORINE's `Code_18` (CLC codes) by default, or the field named by
`--label-field`, whose values go through a legend (`olr.data.legends`).

GDAL's GeoPackage (SQLite) reader can crash the whole process on a damaged file, so the
layer is read in a child (`python -c "...; _vector_child()"`) and comes back as plain data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.windows import Window

from olr import workspace
from olr.data.label_schemes import short_repr, whole_number
from olr.data.rasters.codes import LabelCoding, corine_coding, legend_coding
from olr.data.rasters.label_source import LabelSource, no_overlap, overlap_in, tiles_view
from olr.data.rasters.user_files import open_vector
from olr.errors import OLRError

#: Seconds a child process may take to read a vector label file.
VECTOR_READ_TIMEOUT_S = 900
#: The label field of a CORINE vector (matched in any case).
CORINE_FIELD = "Code_18"


@dataclass
class _Shape:
    geometry: dict
    code_index: int
    bounds: tuple[float, float, float, float]
    value: int | str  # the raw attribute value


def _geometry_bounds(geometry: dict) -> tuple[float, float, float, float]:
    xs, ys = [], []

    def walk(c):
        if isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for part in c:
                walk(part)

    if geometry["type"] == "GeometryCollection":
        for g in geometry["geometries"]:
            b = _geometry_bounds(g)
            xs += [b[0], b[2]]
            ys += [b[1], b[3]]
    else:
        walk(geometry["coordinates"])
    return min(xs), min(ys), max(xs), max(ys)


@dataclass
class VectorLabels(LabelSource):
    """Label polygons (their `field_name` value through `coding`) reprojected to the image CRS,
    rasterised per window."""

    path: Path
    image_transform: Affine
    coding: LabelCoding
    shapes: list[_Shape] = field(default_factory=list)
    crs_wkt: str = ""
    field_name: str = CORINE_FIELD
    kind: str = "vector"

    def __post_init__(self):
        LabelSource.__init__(self, self.coding)

    def read_tiles(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int) -> np.ndarray:
        codes = self.read(window)
        return np.ascontiguousarray(tiles_view(codes, n_rows, n_cols, tile, stride)).reshape(-1, tile, tile)

    def read(self, window: Window) -> np.ndarray:
        """(h, w) uint8 code indices of a window of the image grid."""
        from rasterio.features import rasterize
        from rasterio.windows import bounds as window_bounds
        from rasterio.windows import transform as window_transform

        h, w = int(window.height), int(window.width)
        left, bottom, right, top = window_bounds(window, self.image_transform)
        x0, x1 = min(left, right), max(left, right)
        y0, y1 = min(bottom, top), max(bottom, top)
        inside = [
            (s.geometry, s.code_index)
            for s in self.shapes
            if s.bounds[0] <= x1 and s.bounds[2] >= x0 and s.bounds[1] <= y1 and s.bounds[3] >= y0
        ]
        if not inside:
            return np.zeros((h, w), dtype=np.uint8)
        unknown = self.coding.unknown_index
        if len(self.unknown_values) < 64:
            self.unknown_values.update(
                s.value
                for s in self.shapes
                if s.code_index == unknown
                and s.bounds[0] <= x1
                and s.bounds[2] >= x0
                and s.bounds[1] <= y1
                and s.bounds[3] >= y0
            )
        return rasterize(
            inside, out_shape=(h, w), transform=window_transform(window, self.image_transform), fill=0, dtype=np.uint8
        )

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "encoding": self.encoding,
            "crs": self.crs_wkt,
            "field": self.field_name,
            "features": len(self.shapes),
        }


def _features_in(layer, bbox) -> list:
    """The layer's features whose bounds meet `bbox` (in the layer's CRS).

    GDAL answers a bbox filter on a GeoPackage through its R-tree index, which needs SQLite's
    rtree module; once TensorFlow is imported its own SQLite, without that module, is the one
    in use (the app or a notebook that trained first). Then the features are filtered here.
    """
    try:
        return list(layer.filter(bbox=bbox))
    except Exception as e:  # fiona raises driver-specific error types
        if "rtree" not in str(e):
            raise
    x0, y0, x1, y1 = bbox
    out = []
    for feat in layer:
        if feat.geometry is None:
            continue
        fx0, fy0, fx1, fy1 = _geometry_bounds(dict(feat.geometry))
        if fx0 <= x1 and fx1 >= x0 and fy0 <= y1 and fy1 >= y0:
            out.append(feat)
    return out


def read_vector_layer(path: str | os.PathLike, image_crs: str, image_bounds, label_field: str | None = None) -> dict:
    """The labelled polygons of a vector file that meet the image, as plain data.

    Returns {"crs": layer WKT, "field": the label field's name (`label_field`, default
    Code_18), "n_features": features in the overlap, "features": [[value, GeoJSON geometry in
    the layer CRS], ...]} (value: an int when whole, else the text); raises OLRError for a
    file that is not a readable vector, lacks the field or a CRS, or misses the image. Runs
    in a child process (`_read_vector_isolated`); only the GeoPackage and Shapefile drivers
    may open the file (`user_files`).
    """
    try:
        layer = open_vector(path)
    except OLRError:
        raise
    except Exception:  # fiona raises several driver-specific types
        raise OLRError(
            f"The labels {path} are neither a raster nor a vector file this app reads; "
            "give a CORINE GeoTIFF, GeoPackage or Shapefile."
        ) from None
    with layer:
        field_name = _label_field(layer, path, label_field)
        if layer.crs is None or not layer.crs:
            raise OLRError(f"The vector labels {path} have no coordinate reference system; assign one and try again.")
        layer_crs = layer.crs.to_wkt()
        overlap = overlap_in(layer_crs, layer.bounds, image_crs, image_bounds)
        if overlap is None:
            return {"crs": layer_crs, "field": field_name, "n_features": 0, "features": []}
        n_features, features = _coded_features(layer, overlap, field_name)
    return {"crs": layer_crs, "field": field_name, "n_features": n_features, "features": features}


def _label_field(layer, path, wanted: str | None) -> str:
    """The name of the layer's label field (`wanted`, default Code_18), spelled exactly or in another case."""
    fields = list(layer.schema["properties"])
    name = wanted or CORINE_FIELD
    match = [f for f in fields if f == name] or [f for f in fields if f.lower() == name.lower()]
    if match:
        return match[0]
    listed = ", ".join(fields[:20]) or "none"
    if wanted is None:
        raise OLRError(
            f"The vector labels {path} have no Code_18 field (fields: {listed}); give the CORINE vector with its "
            "Code_18 attribute, or name the label attribute with --label-field (and its classes with --legend)."
        )
    raise OLRError(
        f"The vector labels {path} have no field {short_repr(wanted)} (fields: {listed}); "
        "give --label-field with one of them."
    )


def _coded_features(layer, bbox, field_name: str) -> tuple[int, list]:
    """(features meeting `bbox`, [[value, GeoJSON geometry], ...] of those with a value and a
    geometry; value: an int when whole, else the stripped text)."""
    features = []
    n_features = 0
    for feat in _features_in(layer, bbox):
        n_features += 1
        raw = feat.properties[field_name]
        if raw is None or feat.geometry is None or (isinstance(raw, str) and not raw.strip()):
            continue
        number = whole_number(raw)
        features.append([number if number is not None else str(raw).strip()[:80], dict(feat.geometry)])
    return n_features, features


def _read_vector_isolated(path: Path, image, label_field: str | None = None) -> dict:
    """`read_vector_layer` in a child process.

    GDAL's GeoPackage (SQLite) reader can crash the whole process with a segmentation fault
    on a damaged file (found by tests/test_fuzz_inputs.py); in a child, that crash becomes an
    error sentence and the app or the caller lives on.
    """
    import json
    import subprocess
    import sys

    request = json.dumps(
        {"path": str(path), "crs": image.crs.to_wkt(), "bounds": list(image.bounds), "field": label_field}
    )
    code = "from olr.data.rasters.vector_labels import _vector_child; _vector_child()"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            input=request,
            capture_output=True,
            text=True,
            timeout=VECTOR_READ_TIMEOUT_S,
            cwd=workspace.REPO_ROOT,
        )
    except subprocess.TimeoutExpired:
        raise OLRError(
            f"Reading the vector labels {path} took over {VECTOR_READ_TIMEOUT_S} s; "
            "clip the CORINE file to the image area and try again."
        ) from None
    if proc.returncode < 0:
        raise OLRError(
            f"Reading the vector labels {path} crashed GDAL (signal {-proc.returncode}): the file is damaged; "
            "export or download it again."
        )
    try:
        reply = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OLRError(
            f"Reading the vector labels {path} failed ({last[:200]}); "
            "check that it is a CORINE GeoPackage or Shapefile."
        ) from None
    if "error" in reply:
        raise OLRError(reply["error"])
    return reply["layer"]


def _vector_child() -> None:
    """Entry of the child process of `_read_vector_isolated`: request on stdin, JSON reply on stdout."""
    import json
    import sys

    request = json.loads(sys.stdin.read())
    try:
        reply = {"layer": read_vector_layer(request["path"], request["crs"], request["bounds"], request["field"])}
    except OLRError as e:
        reply = {"error": str(e)}
    except Exception as e:
        reply = {
            "error": f"The vector labels {request['path']} could not be read ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); the file is damaged: export or download it again."
        }
    sys.stdout.write(json.dumps(reply))


def open_vector_labels(
    path: Path, image, encoding: str, legend=None, label_field: str | None = None, nodata=None
) -> VectorLabels:
    """A vector's polygons as a label source on `image`'s grid: the `label_field` values (default Code_18)
    through `legend`, or as CLC codes without one; `nodata`: a value meaning no label. OLRError when
    the file misses the image or holds no class over it."""
    from rasterio.warp import transform_geom

    if encoding == "grid" and legend is None:
        raise OLRError(
            f"The vector labels {path} carry CLC codes in their label field, not grid codes; "
            "use --label-encoding auto or clc (or --legend FILE for another map)."
        )
    layer = _read_vector_isolated(path, image, label_field)
    if layer["n_features"] == 0:
        raise no_overlap(path, image)
    coding = corine_coding("clc", nodata) if legend is None else legend_coding(legend, nodata)
    shapes = []
    for value, geometry in layer["features"]:
        index = coding.index_of(value)
        if index:
            geom = transform_geom(layer["crs"], image.crs, geometry)
            shapes.append(_Shape(geom, index, _geometry_bounds(geom), value))
    ib = image.bounds
    if not any(
        s.code_index != coding.unknown_index
        and s.bounds[0] <= ib.right
        and s.bounds[2] >= ib.left
        and s.bounds[1] <= ib.top
        and s.bounds[3] >= ib.bottom
        for s in shapes
    ):
        what = "CLC codes 111..523" if legend is None else f"values of the legend {legend.source}"
        raise OLRError(
            f"The labels {path} hold no valid land-cover class ({layer['field']} with {what}) where they overlap "
            "the image; check that this is the label map for this area (and its --label-field and --legend)."
        )
    return VectorLabels(path, image.transform, coding, shapes, layer["crs"], layer["field"])
