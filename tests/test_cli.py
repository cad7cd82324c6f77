"""The command line: every subcommand's --help runs, the `olr` program is installed, errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from olr.cli import COMMANDS
from olr.workspace import REPO_ROOT


def olr(*args: str, program: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(program or [sys.executable, "-m", "olr"]), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


#: runs `olr.cli.main([*argv, "--help"])` for each argv given as JSON in sys.argv[1]; prints one JSON list
#: of {argv, code, stdout} (the exit code of argparse's SystemExit, or main's return value)
HELP_SCRIPT = """
import contextlib, io, json, sys
from olr import cli
results = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = cli.main([*argv, "--help"])
        except SystemExit as e:
            code = e.code
    results.append({"argv": argv, "code": code, "stdout": out.getvalue()})
print(json.dumps(results))
"""


def test_every_subcommand_help_runs():
    """Every subcommand's --help (and every benchmark's) in one fresh interpreter: exit 0, usage and help text."""
    from olr.workflows.bench import BENCHMARKS

    calls = [[name] for name in COMMANDS] + [["bench", name] for name in BENCHMARKS]
    proc = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, json.dumps(calls)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["argv"] for r in results] == calls
    for r in results:
        usage = " ".join(["python -m olr", *r["argv"]])
        assert r["code"] == 0 and f"usage: {usage}" in r["stdout"], r
        if len(r["argv"]) == 1:
            assert COMMANDS[r["argv"][0]].help in " ".join(r["stdout"].split()), r


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


def test_a_command_process_caps_mallocs_arenas_unless_the_user_did(monkeypatch):
    from olr import cli

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert cli.cap_malloc_arenas() is False  # the user's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    # this machine runs glibc on Linux, where mallopt accepts the cap
    assert cli.cap_malloc_arenas() is True
