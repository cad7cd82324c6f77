"""Every page fits the window at 1280 and 1920 px: no chart, image or table wider than its column.

One browser context per width visits the pages in sequence on the session's app server (the
fixture runs "cls" and "siam" are picked by the sidebar's defaults, so the charts render) and
measures in the page itself: the drawn chart (vega-embed canvas/svg), element iframes and images
against the column (stColumn) or main block holding them, tables that scroll sideways inside
themselves (columns cut off), metric cards whose figure is cut off, and the page scrolling sideways.
Screenshots per page and width go to test-artifacts/screenshots/layout-<width>-<page>.png.
"""

from __future__ import annotations

import time

import pytest

from tests.fixtures.browser import SCREENSHOTS
from tests.test_browser import settle

WIDTHS = {1280: 900, 1920: 1080}
CHART = ".vega-embed"
TABLE = '[data-testid="stDataFrame"], [data-testid="stTable"]'
#: (url path, page title, the view to open on it before measuring, if any, what shows the page has rendered)
PAGES = [
    ("", "Datasets", None, CHART),
    ("", "Datasets", "Sample tiles", '[data-testid="stImage"]'),
    ("train", "Train", None, '[data-testid="stForm"]'),
    ("live", "Live", None, CHART),
    ("study", "Study", None, "h1"),
    ("evaluate", "Evaluate", None, '[data-testid="stDataFrame"]'),  # the per-label table, near the end
    ("correlations", "Correlations & map", None, CHART),
    ("compare", "Compare", None, TABLE),
]
#: tolerance in px for sub-pixel rounding
SLACK = 2

#: What sticks out, measured in the browser: one line per offending element, empty when all fits.
OVERFLOWS_JS = """
(slack) => {
  const found = [];
  const name = (el) => {
    const id = el.closest('[data-testid]');
    const text = (el.closest('[data-testid="stElementContainer"]') || el).innerText || '';
    return `${id ? id.dataset.testid : el.tagName}` + (text ? ` "${text.trim().slice(0, 40)}"` : '');
  };
  const holder = (el) =>
    el.parentElement.closest('[data-testid="stColumn"]') ||
    el.closest('[data-testid="stMainBlockContainer"], [data-testid="stSidebarContent"]');
  const drawn = [
    ...document.querySelectorAll('.vega-embed > canvas, .vega-embed > svg'),
    ...document.querySelectorAll('[data-testid="stElementContainer"] iframe'),
    ...document.querySelectorAll('[data-testid="stImage"] img, [data-testid="stImageContainer"] img'),
    ...document.querySelectorAll('[data-testid="stDataFrame"], [data-testid="stTable"] table'),
  ];
  for (const el of drawn) {
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;
    const outer = holder(el);
    if (!outer) continue;
    const edge = outer.getBoundingClientRect().right;
    if (box.right > edge + slack) {
      found.push(`${name(el)}: ${el.tagName.toLowerCase()} ${Math.round(box.width)} px wide ends ` +
                 `${Math.round(box.right - edge)} px beyond its ${outer.dataset.testid} ` +
                 `(${Math.round(outer.getBoundingClientRect().width)} px)`);
    }
  }
  // A data grid scrolls sideways inside itself when its columns do not fit: the last ones are cut off.
  for (const grid of document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')) {
    if (grid.scrollWidth > grid.clientWidth + slack) {
      found.push(`${name(grid)}: table columns ${grid.scrollWidth} px wide in ${grid.clientWidth} px ` +
                 `(scrolls sideways, columns cut off)`);
    }
  }
  // A metric card too narrow for its figure shows "84.…": the figure is cut off.
  for (const value of document.querySelectorAll('[data-testid="stMetricValue"] *, [data-testid="stMetricValue"]')) {
    if (value.scrollWidth > value.clientWidth + slack) {
      found.push(`${name(value)}: metric figure cut off (${value.scrollWidth} px in ${value.clientWidth} px)`);
      break;
    }
  }
  const main = document.querySelector('[data-testid="stMain"]');
  const scrollers = [['page', document.documentElement], ['main area', main]];
  for (const [what, el] of scrollers) {
    if (el && el.scrollWidth > el.clientWidth + slack) {
      found.push(`the ${what} scrolls sideways: ${el.scrollWidth} px of content in ${el.clientWidth} px`);
    }
  }
  return found;
}
"""


def screenshot(page, name: str, width: int, height: int) -> None:
    """A full-page screenshot at this width (the main area scrolls inside the app, so the window grows to fit)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    content = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight))")
    page.set_viewport_size({"width": width, "height": int(min(max(content + 40, height), 6000))})
    time.sleep(0.5)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": width, "height": height})


def wait_for_drawings(page, timeout: float = 30.0) -> None:
    """Until every vega-embed has drawn its canvas or svg (they draw after the run has settled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = page.evaluate(
            "() => [...document.querySelectorAll('.vega-embed')].filter(e => !e.querySelector('canvas, svg')).length"
        )
        if not pending:
            return
        time.sleep(0.3)
    raise AssertionError(f"{pending} chart(s) did not draw within {timeout:.0f} s")


@pytest.mark.parametrize("width", list(WIDTHS))
def test_no_chart_or_table_overflows_its_column(app_server, chromium, width):
    height = WIDTHS[width]
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    problems = {}
    try:
        for path, title, view, ready in PAGES:
            page.goto(f"{app_server}/{path}")
            page.wait_for_selector('[data-testid="stAppViewContainer"]')
            settle(page)
            if view:
                page.get_by_text(view, exact=True).first.click()
                settle(page)
            # under load a run can look quiet before its elements arrive: wait for the page's own content too
            page.wait_for_selector(ready, state="attached", timeout=90000)  # some sit in collapsed expanders
            settle(page)
            assert page.locator("h1").first.inner_text().strip() == title
            assert page.locator('[data-testid="stException"]').count() == 0, f"{title}: an exception is shown"
            # each page runs inside app.py's navigation (shared sidebar), also when opened by its own link
            assert "Search runs and datasets" in page.locator('[data-testid="stSidebar"]').inner_text()
            assert page.get_by_role("link", name="Correlations & map").count() == 1
            wait_for_drawings(page)
            time.sleep(0.5)  # charts sized to their container settle after one resize
            where = f"{title}" + (f" ({view})" if view else "")
            found = page.evaluate(OVERFLOWS_JS, SLACK)
            if found:
                problems[where] = found
            slug = (path or "datasets") + (f"-{view.split()[-1].lower()}" if view else "")
            screenshot(page, f"layout-{width}-{slug}", width, height)
    finally:
        context.close()
    assert not problems, f"at {width} px wide:\n" + "\n".join(
        f"{where}:\n  " + "\n  ".join(lines) for where, lines in problems.items()
    )
