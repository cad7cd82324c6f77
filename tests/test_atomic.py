"""Atomic files and staged folders (olr.atomic): readers see old or new, never half."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from olr import atomic
from olr.errors import OLRError
from olr.workspace import REPO_ROOT


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_json_replaces_the_file_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "status.json"
    atomic.write_json(path, {"step": np.int64(3), "loss": np.float32(0.5), "shape": np.arange(2), "where": Path("a")})
    assert json.loads(path.read_text()) == {"step": 3, "loss": 0.5, "shape": [0, 1], "where": "a"}
    atomic.write_text(path, "new")
    assert path.read_text() == "new" and listing(tmp_path) == ["status.json"]
    with pytest.raises(TypeError):
        atomic.write_json(path, {"x": object()})
    assert path.read_text() == "new" and listing(tmp_path) == ["status.json"]


def test_a_failed_replace_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def broken(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(atomic.os, "replace", broken)
    with pytest.raises(OSError):
        atomic.write_bytes(path, b"new")
    assert path.read_text() == "old" and listing(tmp_path) == ["a.txt"]


def test_temp_sibling_is_a_fresh_name_next_to_the_target(tmp_path):
    a, b = atomic.temp_sibling(tmp_path / "x.npy"), atomic.temp_sibling(tmp_path / "x.npy")
    assert a != b and a.parent == tmp_path and a.name.startswith(".x.npy.")
    atomic.replace_file_from(a, tmp_path / "x.npy")
    assert (tmp_path / "x.npy").exists() and not a.exists()


def test_staged_folder_appears_only_when_complete(tmp_path):
    final = tmp_path / "data" / "ds"
    with atomic.staged_folder(final) as stage:
        (stage / "a.txt").write_text("1")
        assert not final.exists() and stage.parent == final.parent and stage.name.startswith(".ds.")
    assert listing(final) == ["a.txt"] and listing(final.parent) == ["ds"]


def test_staged_folder_failure_leaves_nothing(tmp_path):
    final = tmp_path / "ds"
    with pytest.raises(ValueError), atomic.staged_folder(final) as stage:
        (stage / "half.npy").write_bytes(b"x")
        raise ValueError("boom")
    assert listing(tmp_path) == []


def test_existing_folder_is_kept_unless_overwrite(tmp_path):
    final = tmp_path / "ds"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(OLRError, match="already exists"), atomic.staged_folder(final):
        pass
    # overwrite, but the new build fails: the old one stays
    with pytest.raises(RuntimeError), atomic.staged_folder(final, overwrite=True) as stage:
        (stage / "new.txt").write_text("new")
        raise RuntimeError("failed")
    assert listing(final) == ["old.txt"] and listing(tmp_path) == ["ds"]
    with atomic.staged_folder(final, overwrite=True) as stage:
        (stage / "new.txt").write_text("new")
    assert listing(final) == ["new.txt"] and listing(tmp_path) == ["ds"]


def test_a_folder_created_while_building_is_not_replaced_without_overwrite(tmp_path):
    final = tmp_path / "ds"
    with pytest.raises(OLRError, match="was created meanwhile"), atomic.staged_folder(final) as first:
        (first / "first.txt").write_text("1")
        with atomic.staged_folder(final) as second:  # another build of the same name finishes first
            (second / "second.txt").write_text("2")
    assert listing(final) == ["second.txt"] and listing(tmp_path) == ["ds"]


def test_overwrite_puts_the_old_folder_back_if_the_final_rename_fails(tmp_path, monkeypatch):
    final = tmp_path / "ds"
    final.mkdir()
    (final / "old.txt").write_text("old")
    real = os.replace

    def replace(src, dst):
        if Path(src).name.endswith(".partial"):
            raise OSError(errno.EIO, "I/O error")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError), atomic.staged_folder(final, overwrite=True) as stage:
        (stage / "new.txt").write_text("new")
    assert listing(final) == ["old.txt"] and listing(tmp_path) == ["ds"]


@pytest.mark.parametrize(
    "code,message",
    [
        (errno.ENOSPC, "disk is full"),
        (errno.EDQUOT, "disk is full"),
        (errno.EACCES, "Permission denied"),
        (errno.EROFS, "Permission denied"),
    ],
)
def test_disk_and_permission_errors_become_one_sentence(tmp_path, code, message):
    with pytest.raises(OLRError, match=message), atomic.staged_folder(tmp_path / "ds") as stage:
        (stage / "part").write_bytes(b"x")
        raise OSError(code, os.strerror(code))
    assert listing(tmp_path) == []


def test_other_os_errors_pass_through(tmp_path):
    with pytest.raises(OSError) as info, atomic.staged_folder(tmp_path / "ds"):
        raise OSError(errno.EIO, "I/O error")
    assert not isinstance(info.value, OLRError) and listing(tmp_path) == []


def test_leftovers_without_a_lock_go_only_when_old(tmp_path):
    old_dir = tmp_path / ".ds.abc.partial"
    old_dir.mkdir()
    (old_dir / "images.npy").write_bytes(b"x")
    old_file = tmp_path / ".meta.json.123.tmp"
    old_file.write_text("{}")
    fresh = tmp_path / ".other.partial"
    fresh.mkdir()
    keep = tmp_path / "ds"
    keep.mkdir()
    hidden = tmp_path / ".config"
    hidden.write_text("x")
    past = time.time() - 7200
    for p in (old_dir, old_file, hidden):
        os.utime(p, (past, past))
    removed = atomic.finish_interrupted(tmp_path, min_age_s=3600)
    assert sorted(p.name for p in removed) == [".ds.abc.partial", ".meta.json.123.tmp"]
    assert listing(tmp_path) == [".config", ".other.partial", "ds"]
    assert atomic.finish_interrupted(tmp_path / "missing") == []


_KILLED_BUILD = """
import os, signal, sys
from pathlib import Path
from olr import atomic

final, when = Path(sys.argv[1]), sys.argv[2]
real_replace = os.replace

def replace_then_die(src, dst):
    real_replace(src, dst)
    if when == "after-move-aside":  # the previous version is in .old, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)

atomic.os.replace = replace_then_die
with atomic.staged_folder(final, overwrite=True) as tmp:
    (tmp / "data.txt").write_text("new")
    if when == "while-building":
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["while-building", "after-move-aside"])
def test_a_build_killed_with_sigkill_loses_nothing_and_is_cleaned_up(tmp_path, when):
    final = tmp_path / "ds"
    final.mkdir()
    (final / "data.txt").write_text("previous")
    proc = subprocess.run([sys.executable, "-c", _KILLED_BUILD, str(final), when], cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert any(name.endswith(".partial") for name in leftovers) and any(name.endswith(".lock") for name in leftovers)
    if when == "after-move-aside":
        assert not final.exists() and any(name.endswith(".old") for name in leftovers)
    # the owner's lock is free now: the next look puts the previous version back and clears the rest
    removed = atomic.finish_interrupted(tmp_path)
    assert removed and (final / "data.txt").read_text() == "previous"
    assert listing(tmp_path) == ["ds"]


def test_a_running_build_is_left_alone(tmp_path):
    with atomic.staged_folder(tmp_path / "ds") as tmp:
        (tmp / "data.txt").write_text("new")
        assert atomic.finish_interrupted(tmp_path, min_age_s=0) == []  # its lock is held
        assert tmp.is_dir()
    assert listing(tmp_path) == ["ds"]
