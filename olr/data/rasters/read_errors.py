"""Clear errors for source files: missing paths, and GDAL errors of files damaged past their header."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rasterio._err import CPLE_BaseError  # GDAL's own errors; rasterio has no public alias
from rasterio.errors import RasterioError

from olr.errors import OLRError

#: What GDAL raises when a file that opened turns out damaged while its pixels are read.
READ_ERRORS = (RasterioError, CPLE_BaseError)


@contextlib.contextmanager
def read_errors_named(*paths: str | os.PathLike):
    """Inside the block, GDAL errors of files that opened but are damaged become `read_failure`'s sentence."""
    try:
        yield
    except READ_ERRORS as error:
        raise read_failure(error, *paths) from None


def read_failure(error: BaseException, *paths: str | os.PathLike) -> OLRError:
    """The one-sentence error for a raster or vector that failed while being read.

    GDAL's most specific message is often on the exception's cause ("Read failed. See previous
    exception"); it usually names the file, which tells which of `paths` is damaged.
    """
    messages = []
    e: BaseException | None = error
    while e is not None and len(messages) < 5:
        text = " ".join(str(e).split())
        if text:
            messages.append(text)
        e = e.__cause__ or e.__context__
    detail = next((m for m in reversed(messages) if "See previous exception" not in m), messages[0] if messages else "")
    named = [Path(p) for p in paths if Path(p).name in " ".join(messages)]
    which = f"The file {named[0]}" if len(named) == 1 else "One of the files " + ", ".join(map(str, paths))
    return OLRError(
        f"{which} could not be read to the end ({detail[:200]}): it is truncated or corrupted; copy or export it again."
    )


def check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise OLRError(f"The {what} file {path} does not exist; check the path and try again.")
    if path.is_dir():
        raise OLRError(f"The {what} path {path} is a folder, not a file; give the raster file itself.")
