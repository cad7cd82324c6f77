"""Files a user hands the app: uploads saved into the workspace, typed server paths checked.

Uploads go to `data/uploads/<submission>/` (one folder per submission, so a shapefile's
sidecar files stay together; removed again when the preparation fails) with a size cap; the
last label file uploaded is the one used (`LabelUpload`), never an older one beside it. Typed
paths must resolve inside the workspace's data folder, so a page can never be used to read
arbitrary files of the server.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from olr import atomic, workspace
from olr.errors import OLRError

DEFAULT_MAX_UPLOAD_MB = 1024
RASTER_TYPES = ("tif", "tiff")
LABEL_TYPES = ("tif", "tiff", "gpkg", "shp", "shx", "dbf", "prj", "cpg")
#: Label files that are a label source themselves (the other label types are shapefile sidecars).
MAIN_LABEL_SUFFIXES = (".tif", ".tiff", ".gpkg", ".shp")


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
    """The label source among uploaded files (in upload order): the last raster, GeoPackage or .shp."""
    mains = [p for p in paths if p.suffix.lower() in MAIN_LABEL_SUFFIXES]
    if not mains:
        raise OLRError(
            "No label file among the uploads; upload a CORINE GeoTIFF, a GeoPackage, "
            "or a shapefile (.shp with its .shx, .dbf, .prj)."
        )
    return mains[-1]


@dataclass(frozen=True)
class LabelUpload:
    """What the label uploader's files (in upload order) amount to: the file used and those it replaces."""

    used: object | None  # the uploaded file object read as labels, None when there is none
    files: list  # `used` with the shapefile sidecars of its own name: what is saved
    replaced: list[str]  # names of earlier label files the last one replaces (never saved)

    @classmethod
    def of(cls, files) -> LabelUpload:
        files = list(files or [])
        mains = [f for f in files if Path(f.name).suffix.lower() in MAIN_LABEL_SUFFIXES]
        if not mains:
            return cls(None, [], [])
        used = mains[-1]
        sidecars = []
        if Path(used.name).suffix.lower() == ".shp":
            sidecars = [f for f in files if f not in mains and Path(f.name).stem == Path(used.name).stem]
        return cls(used, [used, *sidecars], [f.name for f in mains[:-1]])


@contextlib.contextmanager
def saved_uploads(image_file, label_files, dataset_name: str) -> Iterator[tuple[Path, Path]]:
    """Save an image upload and the label upload (`LabelUpload`) into a fresh folder; yields (image, labels).

    The folder is removed when the block fails or is stopped (an exception of any kind), so a
    failed or cancelled preparation leaves no uploads behind.
    """
    labels = LabelUpload.of(label_files)
    if image_file is None or labels.used is None:
        raise OLRError("Upload both files: the image raster and the CORINE labels.")
    if safe_filename(image_file.name) in {safe_filename(f.name) for f in labels.files}:
        raise OLRError(
            f"The image and the labels are both named {image_file.name!r}; rename one of them and upload it again."
        )
    submission = f"{dataset_name}-{secrets.token_hex(4)}"
    try:
        image = save_uploads([image_file], submission, RASTER_TYPES)[0]
        saved = save_uploads(labels.files, submission, LABEL_TYPES)
        yield image, saved[0]
    except BaseException:
        shutil.rmtree(uploads_dir() / submission, ignore_errors=True)
        raise


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
