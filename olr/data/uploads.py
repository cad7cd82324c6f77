"""Files a user hands the app: uploads saved into the workspace, typed server paths checked.

Uploads go to `data/uploads/<submission>/` (one folder per submission, so a shapefile's
sidecar files stay together) with a size cap; typed paths must resolve inside the workspace's
data folder, so a page can never be used to read arbitrary files of the server.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from olr import atomic, workspace
from olr.errors import OLRError

DEFAULT_MAX_UPLOAD_MB = 1024
RASTER_TYPES = ("tif", "tiff")
LABEL_TYPES = ("tif", "tiff", "gpkg", "shp", "shx", "dbf", "prj", "cpg")


def max_upload_mb() -> int:
    """The upload cap in MB (`OLR_MAX_UPLOAD_MB`, default 1024); larger scenes belong on the server."""
    try:
        return max(1, int(os.environ.get("OLR_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)))
    except ValueError:
        return DEFAULT_MAX_UPLOAD_MB


def uploads_dir() -> Path:
    return workspace.data_dir() / "uploads"


def safe_filename(name: str) -> str:
    """The base name of an uploaded file with anything unusual replaced by '_'."""
    base = Path(str(name)).name
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-") or "upload"
    return workspace.check_name(clean[:100], "file name")


def save_uploads(files, submission: str, allowed: tuple[str, ...]) -> list[Path]:
    """Write uploaded files (objects with .name, .size, .getvalue()) into the submission's folder."""
    cap = max_upload_mb()
    folder = uploads_dir() / workspace.check_name(submission, "upload folder")
    saved = []
    for f in files:
        name = safe_filename(f.name)
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if ext not in allowed:
            raise OLRError(
                f"The upload {f.name!r} is not one of the accepted file types ({', '.join(allowed)}); "
                "upload a GeoTIFF or a CORINE vector."
            )
        if f.size > cap * 2**20:
            raise OLRError(
                f"The upload {f.name!r} is {f.size / 2**20:.0f} MB, above the {cap} MB limit; copy it into "
                f"{workspace.data_dir()} on the server and give its path instead."
            )
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(folder / name, f.getvalue())
        saved.append(folder / name)
    return saved


def main_label_file(paths: list[Path]) -> Path:
    """The label source among uploaded files: a raster, a GeoPackage or a shapefile's .shp."""
    for suffix in (".tif", ".tiff", ".gpkg", ".shp"):
        for p in paths:
            if p.suffix.lower() == suffix:
                return p
    raise OLRError(
        "No label file among the uploads; upload a CORINE GeoTIFF, a GeoPackage, "
        "or a shapefile (.shp with its .shx, .dbf, .prj)."
    )


def server_path(text: str, what: str) -> Path:
    """A typed path, resolved inside the workspace data folder; OLRError if outside or missing."""
    if not text or not str(text).strip():
        raise OLRError(f"No {what} path given; type the path of a file inside {workspace.data_dir()}.")
    raw = str(text).strip()
    p = Path(raw)
    if not p.is_absolute() and not raw.startswith("data" + os.sep) and raw != "data":
        p = workspace.data_dir() / p  # paths are typed relative to the data folder
    resolved = workspace.resolve_inside(p, [workspace.data_dir()])
    if not resolved.exists():
        raise OLRError(
            f"The {what} {raw!r} does not exist in {workspace.data_dir()}; "
            "check the path (it is relative to that folder)."
        )
    return resolved


def candidate_files(suffixes: tuple[str, ...], limit: int = 50) -> list[str]:
    """Up to `limit` files under the data folder with these suffixes, relative to it (datasets skipped)."""
    root = workspace.data_dir()
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Prepared datasets hold only arrays; skip them and hidden staging folders.
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not (Path(dirpath) / d / "meta.json").exists()
        )
        for fn in sorted(filenames):
            if fn.lower().endswith(suffixes):
                found.append(str((Path(dirpath) / fn).relative_to(root)))
                if len(found) >= limit:
                    return found
    return found
