"""Opening files a user hands us through GDAL: only GeoTIFF rasters and GeoPackage/Shapefile vectors.

GDAL picks a driver from a file's content, not its name: a "scene.tif" holding VRT XML can
point at any file of the server (/etc/passwd read as pixels) or at a URL (/vsicurl/, so the
server sends HTTP requests). User files therefore open only through a driver allow-list, from
plain local paths, with GDAL's network and raw-file access switched off while they are open.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from olr.errors import OLRError

#: The raster drivers a user file may open with (a Cloud-Optimized GeoTIFF is a GTiff).
RASTER_DRIVER = "GTiff"
#: The vector drivers a user file may open with.
VECTOR_DRIVERS = ("GPKG", "ESRI Shapefile")
#: GDAL settings while user files are open: no URL fetching, no VRT raw access to other files,
#: no directory listing beside the file. Defence in depth: the allow-list already refuses VRTs.
SAFE_ENV = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".olr-no-network",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",
    "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE",
}


def check_local_path(path: str | os.PathLike, what: str) -> Path:
    """`path` as a plain local file; OLRError for GDAL virtual paths (/vsi..., URLs) and non-files."""
    text = os.fspath(path)
    if text.startswith("/vsi") or "://" in text:
        raise OLRError(
            f"The {what} {text!r} is a URL or a GDAL virtual path; give a file on this machine "
            "(downloads and archives must be saved and unpacked first)."
        )
    return Path(text)


def open_raster(path: Path) -> rasterio.DatasetReader:
    """Open a user raster with the GeoTIFF driver only; rasterio's RasterioIOError when it is not one."""
    with rasterio.Env(**SAFE_ENV), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, driver=RASTER_DRIVER)


def fiona_module(task: str):
    """The `fiona` module for `task` ("reading a vector label map", "writing a GeoPackage"), or an
    OLRError saying how to add it: Fiona publishes no wheel for Linux ARM64, so the install leaves it
    out there (pyproject.toml) and it builds only against a GDAL on the machine."""
    try:
        import fiona
    except ImportError:
        raise OLRError(
            f"{task[0].upper()}{task[1:]} needs the fiona package, which is not installed (it has no ready-made "
            "wheel for this platform). Install GDAL's development files (e.g. `apt-get install libgdal-dev`), "
            "then `pip install 'fiona~=1.10.1'`; or rasterize the label map to a GeoTIFF and give that."
        ) from None
    return fiona


def open_vector(path: str | os.PathLike):
    """Open a user vector with the GeoPackage or Shapefile driver only (a fiona Collection)."""
    fiona = fiona_module("reading a vector label map")
    with fiona.Env(**SAFE_ENV):
        return fiona.open(check_local_path(path, "vector labels"), enabled_drivers=list(VECTOR_DRIVERS))
