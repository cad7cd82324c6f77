"""How long each page takes to render on the workspace in OLR_HOME: `python -m ui.page_times [--repeat N]`.

Each page runs through Streamlit's AppTest (the page's script as the server runs it, without a
browser): once cold, then `--repeat` more times; the median and the range of those are printed.
The sidebar picks the newest finished classifier and Siamese runs, as a visitor's first view does.
A measurement, not a test: compare two versions on the same workspace in the same session.
"""

from __future__ import annotations

import argparse
import statistics
import time

from streamlit.testing.v1 import AppTest

from olr.data.dataset import list_datasets
from olr.runs import store
from olr.workspace import REPO_ROOT

PAGES = (
    "pages/datasets.py",
    "pages/train.py",
    "pages/live.py",
    "pages/study.py",
    "pages/evaluate.py",
    "pages/correlations.py",
    "pages/compare.py",
)


def _newest(runs, kind: str) -> str | None:
    return next((r.id for r in runs if r.kind == kind and r.state in store.USABLE_STATES), None)


def page_times(repeat: int) -> dict[str, list[float]]:
    runs = [r for r in store.list_runs() if not r.is_study]
    classifier, siamese = _newest(runs, "classifier"), _newest(runs, "siamese")
    datasets = list_datasets()
    times = {}
    for page in PAGES:
        app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=300)
        app.session_state["olr.dataset"] = "demo" if "demo" in datasets else (datasets or [None])[0]
        app.session_state["olr.run"] = siamese if page == "pages/correlations.py" else classifier
        app.session_state["olr.runs"] = [r for r in (classifier, siamese) if r]
        app.run()
        app.switch_page(page).run()
        if app.exception:
            raise SystemExit(f"{page} raised: {app.exception[0].value}")
        runs_s = []
        for _ in range(repeat):
            started = time.perf_counter()
            app.run()
            runs_s.append(time.perf_counter() - started)
        times[page] = runs_s
    return times


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ui.page_times", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm renders per page after the cold one (default 5)")
    args = parser.parse_args()
    for page, runs_s in page_times(args.repeat).items():
        ms = sorted(1000 * s for s in runs_s)
        print(f"{page:<24} median {statistics.median(ms):7.0f} ms   range {ms[0]:.0f}-{ms[-1]:.0f} ms")


if __name__ == "__main__":
    main()
