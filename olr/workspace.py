"""Where datasets and runs live, and the only way user-given names become paths.

The workspace root holds `data/` (prepared datasets and the demo scene) and `models/`
(training runs). It defaults to the repository folder and moves with `OLR_HOME`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from olr.errors import OLRError

REPO_ROOT = Path(__file__).resolve().parent.parent
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def home() -> Path:
    """The workspace root: `$OLR_HOME` if set, else the repository folder."""
    return Path(os.environ.get("OLR_HOME") or REPO_ROOT).resolve()


def data_dir() -> Path:
    return home() / "data"


def models_dir() -> Path:
    return home() / "models"


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is safe as a single folder name, else raise OLRError.

    Allowed: letters, digits, `.`, `_`, `-`; must start with a letter or digit; no path
    separators, no `..`, at most 100 characters.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise OLRError(
            f"The {what} {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit, no '/' or '..', at most 100 characters)."
        )
    return name


def dataset_path(name: str) -> Path:
    """The folder of dataset `name` inside the workspace (the name is validated)."""
    return data_dir() / check_name(name, "dataset name")


def run_path(run_id: str) -> Path:
    """The folder of run `run_id` inside the workspace (the id is validated)."""
    return models_dir() / check_name(run_id, "run id")


def resolve_inside(path: str | os.PathLike, roots: list[Path] | None = None) -> Path:
    """Resolve `path` (symlinks followed) and require it to lie inside one of `roots`.

    `roots` defaults to the workspace's data and models folders. Relative paths are taken
    relative to the workspace root. Used wherever a path typed into the app is opened.
    """
    roots = [r.resolve() for r in (roots or [data_dir(), models_dir()])]
    p = Path(path)
    if not p.is_absolute():
        p = home() / p
    resolved = p.resolve()
    for root in roots:
        if resolved == root or root in resolved.parents:
            return resolved
    allowed = ", ".join(str(r) for r in roots)
    raise OLRError(
        f"The path {str(path)!r} is outside the allowed folders ({allowed}); put the file there and try again."
    )


def is_readonly() -> bool:
    """True when the workspace is a read-only demo (`OLR_READONLY=1`)."""
    return os.environ.get("OLR_READONLY", "").strip().lower() in ("1", "true", "yes", "on")


def require_writable(action: str) -> None:
    """Raise OLRError if the workspace is read-only; call before every mutating action.

    Checked in the library (not only by hiding buttons), so a shared demo cannot be changed
    through any page.
    """
    if is_readonly():
        raise OLRError(f"This OLR Studio is a read-only demo, so it cannot {action}; run your own copy to do that.")


def env_number(name: str, default, kind=float, env=None):
    """The number (`kind`: int or float) the environment variable `name` holds, `default` when it is unset or
    empty; a value that is not one raises an OLRError saying so."""
    text = (os.environ if env is None else env).get(name, "").strip()
    try:
        return kind(text) if text else default
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        then = f"unset it or give e.g. {default}" if default is not None else "fix or unset it"
        raise OLRError(f"The environment variable {name}={text!r} is not {what}; {then}.") from None
