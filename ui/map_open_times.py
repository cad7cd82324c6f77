"""How long the Datasets page's map of a large dataset takes to open in a real browser
(`python -m olr bench map-open`, or `python -m ui.map_open_times`).

A dataset of about `--tiles` tiles of 16 px is prepared from the synthetic scene of `bench prepare`
(`olr.workflows.bench.make_scene`; scene and dataset kept in `--workdir` and reused when given). Then
`streamlit run app.py` serves a workspace holding only that dataset, and headless Chromium (Debian's,
through Playwright; never a downloaded browser) opens the Datasets page `--repeat` times, each in a
fresh tab: it clicks "Map" and the clock runs until the tile image is decoded in the page. The first
opening after the server starts is cold (the server builds the tile image and the preview); the later
ones find them cached, as a second visitor would. Printed: each opening, the cold one, the median and
range of the warm ones, and the slowest against the target (`TARGET_S`). The machine's other load
counts in these figures: run it on an idle machine.

Needs the test extra (Playwright) and Debian's `chromium`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from olr.errors import OLRError
from ui.served_app import serve_app, settle

#: seconds a map may take to open, cold or warm
TARGET_S = 2.0
TILE = 16
DATASET = "map-bench"

#: the tile image (class `ui.maps.TILE_IMAGE_CLASS`) is in the map and decoded
TILES_DRAWN_JS = """
() => { const i = document.querySelector('img.CLASS'); return !!i && i.complete && i.naturalWidth > 0; }
"""


def prepared_workspace(workdir: Path, n_tiles: int) -> tuple[Path, int]:
    """(A workspace folder in `workdir` holding only the dataset DATASET of about `n_tiles` tiles, prepared once;
    its number of tiles)."""
    from olr.data.dataset import load_dataset
    from olr.data.prepare import prepare_dataset
    from olr.workflows.bench import make_scene

    side = math.ceil(math.sqrt(n_tiles)) * TILE
    home = workdir / f"workspace_{side}"
    out = home / "data" / DATASET
    with contextlib.suppress(OLRError, OSError):
        return home, load_dataset(out).n_tiles
    image, labels = make_scene(workdir, side)
    prepare_dataset(image, labels, out, tile=TILE, label_encoding="grid", overwrite=True)  # make_scene's codes
    return home, load_dataset(out).n_tiles


def map_open_times(url: str, repeat: int) -> list[float]:
    """Seconds from the click on "Map" to the tile image drawn, per opening (each in a fresh tab)."""
    executable = shutil.which("chromium")
    if executable is None:
        raise OLRError("Debian's chromium is not installed; install it (apt-get install chromium) and run again.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise OLRError("Playwright is not installed; install the test extra (requirements-test.txt).") from None
    from ui.maps import TILE_IMAGE_CLASS  # here: importing the maps' Streamlit caches talks, even for --help

    tiles_drawn = TILES_DRAWN_JS.replace("CLASS", TILE_IMAGE_CLASS)
    seconds = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.goto(url)
                page.wait_for_selector('[data-testid="stAppViewContainer"]')
                settle(page, timeout=300)
                started = time.perf_counter()
                page.get_by_text("Map", exact=True).first.click()
                frame = page.wait_for_selector('iframe[title*="st_folium"]', timeout=120_000).content_frame()
                frame.wait_for_function(tiles_drawn, timeout=120_000, polling=20)
                seconds.append(time.perf_counter() - started)
                page.close()
        finally:
            browser.close()
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m olr bench map-open", description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=500_000, help="tiles of the dataset, about (default 500000)")
    parser.add_argument("--repeat", type=int, default=5, help="openings, the first one cold (default 5)")
    parser.add_argument("--workdir", default=None, help="folder keeping the scene and the dataset; default: a temp one")
    args = parser.parse_args(argv)
    if args.tiles < 1 or args.repeat < 1:
        raise SystemExit("--tiles and --repeat must each be at least 1.")
    with contextlib.ExitStack() as stack:
        workdir = Path(args.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="olr-bench-map-")))
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            home, n = prepared_workspace(workdir, args.tiles)
            with serve_app(home, workdir / "streamlit.log") as url:
                times = map_open_times(url, args.repeat)
        except OLRError as e:
            raise SystemExit(str(e)) from None
    print(f"the Datasets page's map of {n:,} tiles ({TILE} px), opened {args.repeat} times in headless Chromium")
    for k, s in enumerate(times):
        print(f"  opening {k + 1}{' (cold: the server builds the image)' if k == 0 else ''}: {s:.2f} s")
    warm = times[1:]
    if warm:
        print(f"warm: median {statistics.median(warm):.2f} s (range {min(warm):.2f}-{max(warm):.2f} s)")
    slowest = max(times)
    print(f"slowest: {slowest:.2f} s (target < {TARGET_S:g} s: {'met' if slowest < TARGET_S else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
