"""The command line: every subcommand's --help runs, the `olr` program is installed, errors exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from olr.cli import COMMANDS
from olr.workspace import REPO_ROOT


def olr(*args: str, program: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(program or [sys.executable, "-m", "olr"]), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_help_runs(name):
    proc = olr(name, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"python -m olr {name}" in proc.stdout and COMMANDS[name].help in " ".join(proc.stdout.split())


def test_every_command_names_a_function_of_its_module():
    import importlib

    for name, command in COMMANDS.items():
        module = importlib.import_module(command.module)
        assert callable(getattr(module, command.function, None)), f"{name}: {command.module}.{command.function}"
        assert callable(getattr(module, "add_arguments", None)), f"{name}: {command.module}.add_arguments"


def test_the_installed_olr_program_is_the_same_command_line():
    program = Path(sys.executable).with_name("olr")
    assert program.is_file(), (
        "the `olr` program is missing: install the project with `pip install -e .` (requirements.txt does)"
    )
    proc = olr("--help", program=[str(program)])
    assert proc.returncode == 0 and proc.stdout.startswith("usage: olr ")
    assert all(name in proc.stdout for name in COMMANDS)


def test_an_unknown_subcommand_exits_2_with_one_sentence():
    proc = olr("trian")
    assert proc.returncode == 2
    assert "unknown subcommand 'trian'" in proc.stderr
