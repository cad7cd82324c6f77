"""Files a user hands the app: uploads saved into the workspace, typed server paths checked.

Uploads go to `data/uploads/<submission>/` (one folder per submission, so a shapefile's
sidecar files stay together; removed again when the preparation fails) with a size cap on all
of a submission's files together: the image (one raster, or several band files stacked onto one
grid), the labels and an optional legend (small: `MAX_LEGEND_MB`). The last label file uploaded
is the one used (`LabelUpload`), never an older one beside it. Typed
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
from typing import NamedTuple

from olr import atomic, workspace
from olr.errors import OLRError

DEFAULT_MAX_UPLOAD_MB = 1024
RASTER_TYPES = ("tif", "tiff")
LABEL_TYPES = ("tif", "tiff", "gpkg", "shp", "shx", "dbf", "prj", "cpg")
#: Label files that are a label source themselves (the other label types are shapefile sidecars).
MAIN_LABEL_SUFFIXES = (".tif", ".tiff", ".gpkg", ".shp")
LEGEND_TYPES = ("csv", "json")
#: A legend names a map's classes in a few kilobytes; a larger upload is the wrong file.
MAX_LEGEND_MB = 1


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
    check_total_size(files)
    folder = uploads_dir() / workspace.check_name(submission, "upload folder")
    saved = []
    for f in files:
        name = safe_filename(f.name)
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if ext not in allowed:
            raise OLRError(
                f"The upload {f.name!r} is not one of the accepted file types ({', '.join(allowed)}); "
                "upload a GeoTIFF, a CORINE vector or a legend (CSV or JSON) where each is asked for."
            )
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(folder / name, f.getvalue())
        saved.append(folder / name)
    return saved


def check_total_size(files) -> None:
    """OLRError when the files together exceed the upload cap (`max_upload_mb`)."""
    cap = max_upload_mb()
    total = sum(f.size for f in files)
    if total > cap * 2**20:
        what = f"The upload {files[0].name!r} is" if len(files) == 1 else f"The {len(files)} uploads are"
        raise OLRError(
            f"{what} {total / 2**20:.1f} MB, above the {cap} MB limit; copy them into "
            f"{workspace.data_dir()} on the server and give their paths instead."
        )


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
            # a sidecar uploaded twice: the last one, as for the main file
            own = {f.name: f for f in files if f not in mains and Path(f.name).stem == Path(used.name).stem}
            sidecars = list(own.values())
        return cls(used, [used, *sidecars], [f.name for f in mains[:-1]])


class SavedUploads(NamedTuple):
    """The saved files of one submission, as `prepare_dataset` takes them."""

    image: Path | list[Path]  # one raster, or the band files to stack onto one grid (in upload order)
    labels: Path
    legend: Path | None  # the legend of a map that is not CORINE, when one was uploaded


@contextlib.contextmanager
def saved_uploads(image_files, label_files, dataset_name: str, legend_file=None) -> Iterator[SavedUploads]:
    """Save image uploads (one raster or several band files), the label upload (`LabelUpload`) and
    an optional legend upload into a fresh folder; yields their paths (`SavedUploads`).

    All files together are held to the upload cap, checked before anything is written. The
    folder is removed when the block fails or is stopped (an exception of any kind), so a
    failed or cancelled preparation leaves no uploads behind.
    """
    workspace.require_writable("save uploaded files")  # checked here too, not only by hiding the uploaders
    images = list(image_files or [])
    labels = LabelUpload.of(label_files)
    if not images or labels.used is None:
        raise OLRError("Upload both the image (one raster or its band files) and the label map, then prepare again.")
    if legend_file is not None and legend_file.size > MAX_LEGEND_MB * 2**20:
        raise OLRError(
            f"The legend upload {legend_file.name!r} is {legend_file.size / 2**20:.1f} MB, above the "
            f"{MAX_LEGEND_MB} MB a legend may be; upload the CSV or JSON naming the map's values (value,name per line)."
        )
    legend = [] if legend_file is None else [legend_file]
    _check_distinct_names(images, labels.files, legend)
    check_total_size([*images, *labels.files, *legend])
    submission = f"{dataset_name}-{secrets.token_hex(4)}"
    try:
        image_paths = save_uploads(images, submission, RASTER_TYPES)
        saved = save_uploads(labels.files, submission, LABEL_TYPES)
        legend_path = save_uploads(legend, submission, LEGEND_TYPES)[0] if legend else None
        yield SavedUploads(image_paths[0] if len(image_paths) == 1 else image_paths, saved[0], legend_path)
    except BaseException:
        shutil.rmtree(uploads_dir() / submission, ignore_errors=True)
        raise


def _check_distinct_names(images: list, label_files: list, legend: list) -> None:
    """OLRError when two files of one submission would be saved under one name (one would overwrite the other)."""
    seen: dict[str, str] = {}
    for role, files in (("image", images), ("label", label_files), ("legend", legend)):
        for f in files:
            name = safe_filename(f.name)
            if name not in seen:
                seen[name] = role
            elif seen[name] == role:
                raise OLRError(f"Two {role} uploads are named {f.name!r}; remove the duplicate or rename one of them.")
            else:
                raise OLRError(
                    f"The {seen[name]} and the {role} uploads are both named {f.name!r}; rename one of them and "
                    "upload it again."
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
