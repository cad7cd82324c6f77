"""The README's first command as a user meets it: nothing to answer, no file watching, no TensorFlow noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from olr.workspace import REPO_ROOT

TF_NOISE = "cpu_feature_guard"  # TensorFlow's C++ start-up line about CPU instructions


def _import_tensorflow_after_olr(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", "import olr, tensorflow"],
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_olr_keeps_tensorflow_start_up_noise_out_unless_asked():
    assert TF_NOISE not in _import_tensorflow_after_olr()
    assert TF_NOISE in _import_tensorflow_after_olr(TF_CPP_MIN_LOG_LEVEL="0")  # the user's choice wins


def _server_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(argv) and str(port).encode() in argv:
            return int(proc.name)
    raise AssertionError(f"no streamlit process serves port {port}")


def _inotify_watches(pid: int) -> int:
    watches = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                watches += (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().count("inotify wd:")
        except OSError:
            continue
    return watches


def test_the_server_from_the_config_asks_nothing_and_watches_no_files(app_server, browser_workspace, page):
    """app_server starts `streamlit run app.py` with no flags of its own for these: .streamlit/config.toml
    has to make it headless (no e-mail prompt) and stop it watching the repository (.venv, data, models)."""
    page.goto(app_server)
    page.wait_for_selector('[data-testid="stAppViewContainer"]')
    pid = _server_pid(urlparse(app_server).port)
    assert _inotify_watches(pid) == 0
    log = (browser_workspace / "streamlit.log").read_text(errors="replace")
    assert "Email" not in log and "Inotify" not in log and TF_NOISE not in log


# The install's environment markers, evaluated for each platform the README names (pip evaluates them
# for the machine it runs on; `pip --platform` only changes which wheels it looks at).
PLATFORMS = {
    "linux x86_64": {"sys_platform": "linux", "platform_machine": "x86_64"},
    "linux aarch64": {"sys_platform": "linux", "platform_machine": "aarch64"},
    "macOS arm64": {"sys_platform": "darwin", "platform_machine": "arm64"},
    "windows": {"sys_platform": "win32", "platform_machine": "AMD64"},
}


def _installed_names(requirements: list[str], platform: str, extra: str = "") -> set[str]:
    from packaging.requirements import Requirement

    names = set()
    for text in requirements:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({**PLATFORMS[platform], "extra": extra}):
            names.add(req.name + "".join(f"[{e}]" for e in sorted(req.extras)))
    return names


def test_every_platform_gets_one_tensorflow_and_fiona_only_where_it_has_wheels():
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    expected_tf = {
        "linux x86_64": "tensorflow-cpu",
        "linux aarch64": "tensorflow",
        "macOS arm64": "tensorflow",
        "windows": "tensorflow-cpu",
    }
    for platform, tf in expected_tf.items():
        base = _installed_names(project["dependencies"], platform)
        cpu = _installed_names(extras["cpu"], platform, "cpu")
        assert not any(n.startswith("tensorflow") for n in base), "TensorFlow belongs to the cpu/gpu extras"
        assert cpu == {tf}, platform
        assert ("fiona" in base) == (platform != "linux aarch64"), platform
        assert {"streamlit", "rasterio", "numpy", "pandas", "folium"} <= base
    assert _installed_names(extras["gpu"], "linux x86_64", "gpu") == {"tensorflow[and-cuda]"}
    # requirements.txt is the CPU install, requirements-gpu.txt the GPU one, and the tests run on the CPU one
    assert "-e .[cpu]" in (REPO_ROOT / "requirements.txt").read_text().splitlines()
    assert "-e .[gpu]" in (REPO_ROOT / "requirements-gpu.txt").read_text().splitlines()
    assert "-e .[cpu,test]" in (REPO_ROOT / "requirements-test.txt").read_text().splitlines()
