"""The Compare page's results-first view (olr.analysis.compare): test figures with intervals read from the
evaluation and the correlations, the best run marked per column, settings that differ in words,
parallel coordinates, repeats over seeds; the page through AppTest and in a real browser.

Runs are the session's tiny "cls" and "siam" and copies of "cls" in this test's workspace with another
seed or setting in config.json and other figures in evaluation/summary.json (the fixtures stay untouched).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from olr import workspace
from olr.analysis import compare, correlations, evaluation
from olr.runs import annotations, store
from tests.fixtures.browser import SCREENSHOTS
from tests.fixtures.pages import open_app
from tests.test_app_pages import element_count, texts
from ui.text import plain

#: the model files a copy does not need: the comparison reads only JSON results, metrics and status
NOT_READ = shutil.ignore_patterns("*.keras", "*.npz")


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def copy_run(source: Path, models: Path, name: str, *, config=None, macro_ap=None, seconds=None) -> Path:
    """A copy of the run folder `source` as models/name: `config` keys replaced, the test macro AP at
    per-label thresholds set to (value, low, high), and the training time to `seconds`."""
    folder = models / name
    shutil.copytree(source, folder, ignore=NOT_READ)
    if config:
        _edit(folder / "config.json", lambda c: c.update(config))
    if macro_ap is not None:
        value, low, high = macro_ap

        def set_ap(summary):
            summary["modes"]["per_label"]["macro"]["ap"] = value
            summary["macro_ap_interval"].update(estimate=value, low=low, high=high)

        _edit(folder / "evaluation" / "summary.json", set_ap)
    if seconds is not None:
        _edit(folder / "status.json", lambda s: s.update(ended=s["started"] + seconds))
    return folder


@pytest.fixture
def compared(trained_classifier_run, trained_siamese_run, monkeypatch) -> Path:
    """This test's workspace: "cls" (seed 0) and two copies with seeds 1 and 2 (one group of repeats), a
    copy with another learning rate and loss, and "siam"; each classifier with its own macro AP and time."""
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    models = workspace.home() / "models"
    copy_run(trained_classifier_run, models, "cls", macro_ap=(0.80, 0.70, 0.90), seconds=90)
    copy_run(trained_classifier_run, models, "cls-s1", config={"seed": 1}, macro_ap=(0.90, 0.85, 0.95), seconds=60)
    copy_run(trained_classifier_run, models, "cls-s2", config={"seed": 2}, macro_ap=(0.90, 0.88, 0.93), seconds=75)
    copy_run(
        trained_classifier_run,
        models,
        "cls-lr",
        config={"learning_rate": 0.001, "loss": "focal"},
        macro_ap=(0.50, 0.40, 0.60),
        seconds=60,
    )
    copy_run(trained_siamese_run, models, "siam", seconds=120)  # the fixture's own time would depend on the machine
    return models


def test_results_read_the_evaluation_and_the_agreement(trained_classifier_run, trained_siamese_run):
    cls, siam = store.load_run(trained_classifier_run), store.load_run(trained_siamese_run)
    table = compare.results_table([cls, siam])
    assert list(table.index) == ["cls", "siam"] and table.loc["cls", "run"] == annotations.run_title(cls)

    tuned = evaluation.read_summary(cls)["modes"]["per_label"]
    row = table.loc["cls"]
    assert row["micro_f2"] == tuned["micro"]["f2"] and row["macro_ap"] == tuned["macro"]["ap"]
    band = tuned["intervals"]["micro_f2"]
    assert (row["micro_f2_low"], row["micro_f2_high"]) == (band["low"], band["high"])
    assert row["baseline"] == tuned["baseline_accuracy"] and row["thresholds"] == "per-label-tuned on validation"
    assert row["duration_s"] == pytest.approx(cls.status["ended"] - cls.status["started"])
    assert row["val_loss"] == store.epoch_metrics(cls, "val")["loss"].iloc[-1]

    agreement = correlations.read_agreement(siam)
    row = table.loc["siam"]
    assert row["rho"] == agreement["siamese_self"]["spearman"]
    assert row["rho_low"] == agreement["siamese_self"]["interval"]["low"]
    assert row["label_prior_rho"] == agreement["label_prior"]["spearman"]
    assert row["classifier_rho"] == agreement["classifier_prob"]["spearman"]
    assert np.isnan(row["micro_f2"])  # a Siamese run has no classification figures
    # the classifier's own ρ is its probability view, never a reference to itself
    assert table.loc["cls", "rho"] == correlations.read_agreement(cls)["classifier_prob"]["spearman"]
    assert np.isnan(table.loc["cls", "classifier_rho"])


def test_best_marks_ties_intervals_and_direction(compared):
    runs = store.list_runs()
    table = compare.results_table(runs)
    marks = compare.best_marks(table)
    # macro AP: cls-s1 and cls-s2 tie at 0.90; cls's interval [0.70, 0.90] reaches theirs; cls-lr's does not
    assert marks["macro_ap"].to_dict() == {
        "cls": compare.WITHIN,
        "cls-s1": compare.BEST,
        "cls-s2": compare.BEST,
        "cls-lr": "",
        "siam": "",
    }
    # duration: lower is better (the two 60 s runs), no interval to overlap
    assert {i for i, m in marks["duration_s"].items() if m} == {"cls-s1", "cls-lr"}
    assert set(marks["duration_s"][marks["duration_s"] != ""]) == {compare.BEST}
    # a damaged summary blanks that run's classification figures and says why
    (compared / "cls-lr" / "evaluation" / "summary.json").write_text("[]")
    table = compare.results_table(store.list_runs())
    assert np.isnan(table.loc["cls-lr", "macro_ap"]) and "summary.json" in table.loc["cls-lr", "problem"]


def test_settings_in_words_parallel_coordinates_and_seed_groups(compared):
    classifiers = [r for r in store.list_runs() if r.kind == "classifier"]
    settings = compare.settings_table(classifiers)
    assert list(settings.columns) == ["run", "Loss", "Learning rate", "Seed"]
    assert settings.loc["cls-lr", "Loss"] == "Focal loss" and settings.loc["cls", "Loss"] == "Binary cross-entropy"
    # kinds differ: the kind is a setting, an option one kind lacks is not
    everything = store.list_runs()
    both = compare.settings_table(everything)
    assert "What to train" in both and "Model" not in both and "Trunk" not in both
    assert both.loc["siam", "What to train"] == "Siamese network (OLR)" and both.loc["siam", "Loss"] == ""
    assert compare.setting_text("classifier_run", "cls") == annotations.run_title(store.load_run("cls"))
    assert compare.setting_text("classifier_run", "gone") == "gone"

    table = compare.results_table(everything)
    lines, ticks = compare.parallel_coordinates(everything, "macro_ap", table)
    assert set(lines["id"]) == {r.id for r in classifiers}  # the Siamese run has no macro AP
    assert list(dict.fromkeys(lines.sort_values("order")["axis"])) == ["Loss", "Learning rate", "Seed", "test macro AP"]
    assert lines["position"].between(0, 1).all()
    figure_axis = lines[lines["axis"] == "test macro AP"].set_index("id")["position"]
    assert figure_axis["cls-s1"] == 1.0 and figure_axis["cls-lr"] == 0.0
    loss_ticks = ticks[ticks["axis"] == "Loss"]
    assert set(loss_ticks["text"]) == {"Binary cross-entropy", "Focal loss"}

    [group] = compare.seed_groups(everything, table)
    assert group.ids == ("cls", "cls-s1", "cls-s2") and group.seeds == (0, 1, 2)
    values = np.array([0.80, 0.90, 0.90])
    mean, std, n = group.stats["macro_ap"]
    assert (mean, std, n) == (pytest.approx(values.mean()), pytest.approx(values.std(ddof=1)), 3)
    seconds = np.array([90, 60, 75])
    assert group.stats["duration_s"][1] == pytest.approx(seconds.std(ddof=1))


def test_compare_page_ranks_marks_and_filters(compared):
    annotations.write(compared / "cls-s1", name="best seed", tags="keep")
    at = open_app("pages/compare.py", **{"olr.runs": ["cls", "siam"]})
    assert not at.error, texts(at, "error")
    results = at.table[0].value
    # ranked by macro AP: the tied best runs first, their numbers in bold with the star, the id beside the name
    by_id = results.set_index("id")
    assert set(results["id"][:2]) == {plain("cls-s1"), plain("cls-s2")} and by_id["run"][plain("cls-s1")] == "best seed"
    assert by_id["test macro AP"][plain("cls-s1")] == "**★ 0.900** [0.850, 0.950]"
    assert by_id["test macro AP"]["cls"].startswith("≈ 0.800 [0.700, 0.900]")
    assert by_id["test macro AP"][plain("cls-lr")] == "0.500 [0.400, 0.600]"
    assert "within interval" in texts(at, "caption")
    # the teachers: each classifier with its figures, the one the Siamese run imitates beside its agreement
    teachers = at.table[1].value.set_index("id")
    assert len(teachers) == 4 and set(teachers["model"]) == {"Residual network"}
    assert teachers["teacher"][plain("cls-s1")] == "best seed"
    assert teachers["test macro AP"][plain("cls-s1")] == "0.900 [0.850, 0.950]"
    assert teachers["Siamese run"]["cls"] == plain(annotations.run_title(store.load_run(compared / "siam")))
    assert teachers["Siamese test ρ"]["cls"].startswith(("+", "-"))
    assert teachers["Siamese run"][plain("cls-s1")] == "" and teachers["siamese time"]["cls"] == "2:00"
    settings = at.table[2].value
    assert {"What to train", "Loss", "Learning rate", "Seed"} <= set(settings.columns)
    repeats = at.table[3].value
    assert repeats["seeds"][0] == "0, 1, 2"
    assert repeats["test macro AP"][0] == f"0.867 ± {np.std([0.8, 0.9, 0.9], ddof=1):.3f} (n=3)"
    assert element_count(at, "vega_lite_chart") == 2  # settings against a figure, the curves

    at.text_input(key="compare.query").input("keep").run()
    assert list(at.table[0].value["id"]) == [plain("cls-s1")]
    assert "1 of 5 runs compared." in texts(at, "caption")


def test_compare_page_in_the_browser(app_server, browser_workspace, page):
    """The results-first view at 1440 px with repeats over seeds (throwaway copies, removed afterwards)."""
    from tests.test_browser import open_page as open_in_browser

    models = browser_workspace / "models"
    copies = [
        # the highest macro AP there can be, so no run another browser test left in this workspace
        # outranks it, and one whose interval overlaps it
        copy_run(models / "cls", models, "zz-compare-s1", config={"seed": 1}, macro_ap=(1.0, 0.9, 1.0)),
        copy_run(models / "cls", models, "zz-compare-s2", config={"seed": 2}, macro_ap=(0.93, 0.88, 0.97)),
    ]
    try:
        page.set_viewport_size({"width": 1440, "height": 900})
        open_in_browser(page, app_server, "compare")
        assert page.locator('[data-testid="stException"]').count() == 0
        tables = page.locator('[data-testid="stTable"]')
        deadline = time.monotonic() + 60
        while tables.count() < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
        results = tables.first.inner_text()
        assert "★ 1.000" in results and "≈ 0.930" in results
        assert "Repeats over seeds" in page.locator("h3").all_inner_texts()
        widths = page.evaluate(
            '() => [...document.querySelectorAll(\'[data-testid="stTable"] table, .vega-embed > svg, '
            ".vega-embed > canvas')].map(e => [e.getBoundingClientRect().right, "
            "document.querySelector('[data-testid=\"stMainBlockContainer\"]').getBoundingClientRect().right])"
        )
        assert widths and all(right <= edge + 2 for right, edge in widths), widths
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1440, "height": min(max(height + 40, 900), 8000)})
        time.sleep(0.6)
        page.screenshot(path=str(SCREENSHOTS / "compare-results-1440.png"), full_page=True)
    finally:
        for folder in copies:
            shutil.rmtree(folder, ignore_errors=True)
