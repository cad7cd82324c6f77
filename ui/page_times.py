"""How long each page takes to render on the workspace in OLR_HOME (`python -m olr bench pages [--repeat N]`,
or `python -m ui.page_times`).

Each page runs through Streamlit's AppTest (the page's script as the server runs it, without a
browser). Cold: the first render of the page with Streamlit's caches emptied (`st.cache_data`,
`st.cache_resource`), as after a server start; then `--repeat` warm renders, whose median and range
are printed, and at the end the slowest page of each kind against the target (TARGET_S). The sidebar
picks the newest finished classifier and Siamese runs, as a visitor's first view does. What a browser
adds (sending and drawing the page) is not in these figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import streamlit as st
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
#: seconds a page may take to render, cold or warm
TARGET_S = 1.0


def _newest(runs, kind: str) -> str | None:
    return next((r.id for r in runs if r.kind == kind and r.state in store.USABLE_STATES), None)


def page_times(repeat: int) -> dict[str, tuple[float, list[float]]]:
    """Per page (cold seconds, [warm seconds ...])."""
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
        app.switch_page(page)
        st.cache_data.clear()
        st.cache_resource.clear()
        started = time.perf_counter()
        app.run()
        cold = time.perf_counter() - started
        if app.exception:
            raise SystemExit(f"{page} raised: {app.exception[0].value}")
        warm = []
        for _ in range(repeat):
            started = time.perf_counter()
            app.run()
            warm.append(time.perf_counter() - started)
        times[page] = (cold, warm)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m olr bench pages", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm renders per page after the cold one (default 5)")
    args = parser.parse_args()
    times = page_times(max(1, args.repeat))
    for page, (cold, warm) in times.items():
        ms = sorted(1000 * s for s in warm)
        print(
            f"{page:<24} cold {1000 * cold:7.0f} ms   warm median {statistics.median(ms):7.0f} ms "
            f"(range {ms[0]:.0f}-{ms[-1]:.0f} ms)"
        )
    for kind, pick in (("cold", lambda t: t[0]), ("warm", lambda t: statistics.median(t[1]))):
        page = max(times, key=lambda p: pick(times[p]))
        seconds = pick(times[page])
        verdict = "met" if seconds < TARGET_S else "NOT met"
        print(f"slowest {kind}: {page} {1000 * seconds:.0f} ms (target < {1000 * TARGET_S:.0f} ms: {verdict})")


if __name__ == "__main__":
    main()
