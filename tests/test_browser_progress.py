"""A real short run followed in the browser: what it is doing before its first metrics, its step within the
epoch, throughput and time left while it trains (Live and the Train page's run list), its solid training line
on the default x axis once it ended; and a launch that fails before training, whose reason the Train page
shows without anything to expand. Screenshots: live-progress-*, train-progress-*.
"""

from __future__ import annotations

import re
import time

from olr.runs import progress, store
from olr.training import options
from tests.fixtures.runs import TINY_CLASSIFIER, start_train_cli, wait_for
from tests.test_browser import open_page, screenshot, settle
from tests.test_browser_layout import OVERFLOWS_JS, SLACK

RUN_ID = "progress-run"
EPOCHS = 12
# Batches of 4: 28 steps per epoch, so the run trains for a while; one metrics line per 50 steps asked,
# more than an epoch has: the run still logs a few per epoch, so its training line shows.
RUN_ARGS = [
    *TINY_CLASSIFIER,
    "--batch-size",
    "4",
    "--epochs",
    str(EPOCHS),
    "--log-every-steps",
    "50",
    "--early-stopping-patience",
    "0",
    "--no-evaluate",
    "--run-id",
    RUN_ID,
]
PROGRESS = re.compile(rf"epoch \d+/{EPOCHS} · step \d+/28 · [\d.,]+ steps/s \([\d.,]+ tiles/s\) · about \d+:\d\d left")
BEFORE_TRAINING = [progress.STARTING_SENTENCE, *progress.PHASE_SENTENCES.values()]
#: the drawn training lines: solid (dash "1,0", validation's is "5,3") paths through at least two points
#: (SVG, as the app draws its charts; on a canvas, the pixels of a run's colour with only "train" shown)
SOLID_LINES_JS = """
() => {
  const svg = document.querySelector('.vega-embed svg.marks');
  if (svg) {
    return [...svg.querySelectorAll('.mark-line path')].filter(p =>
      /L/.test(p.getAttribute('d') || '') && ['1,0', null].includes(p.getAttribute('stroke-dasharray')) &&
      Number(p.getAttribute('opacity') ?? 1) > 0.5).length;  // not the faint raw line under the smoothed one
  }
  const canvas = document.querySelector('.vega-embed canvas');
  if (!canvas) return 0;
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 200 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) n++;
  }
  return n > 300 ? 1 : 0;
}
"""
#: the Live page's x axis as shown (the selectbox's text and input value)
X_AXIS_JS = """
() => {
  const box = [...document.querySelectorAll('[data-testid="stSelectbox"]')].find(b => b.innerText.includes('X axis'));
  return box ? box.innerText + ' ' + [...box.querySelectorAll('input')].map(i => i.value).join(' ') : '';
}
"""
#: the error alerts shown outside any expander (read without opening anything)
OPEN_ERRORS_JS = """
() => [...document.querySelectorAll('[data-testid="stAlertContentError"]')]
  .filter(e => !e.closest('[data-testid="stExpander"]')).map(e => e.innerText)
"""


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_a_real_run_shows_its_progress_while_it_trains_and_its_training_line_after(
    app_server, browser_workspace, chromium, page
):
    proc = start_train_cli(browser_workspace, *RUN_ARGS, OLR_HEARTBEAT_S="0.5")
    train_context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        # Live, opened while the run starts (a live run is picked by default, once its folder says it is live):
        # it says what the process does.
        wait_for(
            lambda: (
                store.load_run(browser_workspace / "models" / RUN_ID).is_live
                if (browser_workspace / "models" / RUN_ID / "status.json").exists()
                else False
            ),
            120,
            "the run's folder to say it is live",
        )
        open_page(page, app_server, "live")
        reason = wait_for(
            lambda: next((s for s in BEFORE_TRAINING if s in main_text(page)), None), 120, "the reason shown before"
        )
        assert "Waiting for the first metrics" not in main_text(page)
        screenshot(page, "live-progress-before-metrics")
        assert reason
        # While it trains: step within the epoch, throughput and time left on Live and in the Train page's run list.
        train = train_context.new_page()
        open_page(train, app_server, "train")
        wait_for(lambda: PROGRESS.search(main_text(page)), 180, "the progress line on Live")
        page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=60000)
        screenshot(page, "live-progress-training")
        wait_for(lambda: PROGRESS.search(main_text(train)), 60, "the progress line in the Train page's run list")
        screenshot(train, "train-progress-run-list")

        # A launch that fails before training (every label pruned): the Train page says why, nothing to expand.
        train.get_by_label("Dataset", exact=True).last.click()
        train.get_by_role("option", name="tiny").click()
        settle(train)
        pruning = train.get_by_label(options.OPTIONS["prune_below"].label, exact=True)
        pruning.fill("1000")
        pruning.press("Tab")
        train.get_by_role("button", name="Launch training").click()
        settle(train)
        errors = wait_for(
            lambda: [e for e in train.evaluate(OPEN_ERRORS_JS) if "No label of dataset tiny is left" in e],
            120,
            "the failed launch's reason on the Train page",
        )
        assert "prune_below=1000" in errors[0]
        assert train.locator('[data-testid="stException"]').count() == 0
        assert not train.evaluate(OVERFLOWS_JS, SLACK)  # the run list with its reason column fits at 1280 px
        screenshot(train, "train-progress-failed-launch")

        # After the run: its solid training line on the default x axis (training step), shown alone.
        assert proc.wait(timeout=300) == 0, proc.stdout.read()
        wait_for(lambda: "finished" in main_text(page), 60, "Live to show the run finished")
        settle(page)
        assert "training step" in page.evaluate(X_AXIS_JS)  # the default x axis
        page.locator('[data-testid="stButtonGroup"] button[aria-pressed="true"]', has_text="val").click()
        settle(page)
        wait_for(lambda: page.evaluate(SOLID_LINES_JS), 60, "the solid training line")
        time.sleep(0.5)
        screenshot(page, "live-progress-training-line")
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        train_context.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
