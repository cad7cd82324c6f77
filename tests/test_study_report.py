"""The study report (`olr.workflows.study_report`): one self-contained HTML file of a study.

On the session's real classifier and Siamese runs: every headline figure appears with its 95 %
interval beside the references it must beat, the file makes no request (checked statically and
in Chromium, whose every request is intercepted), its images decode, the embedded record and
configs read back for `olr study --from`, user-given text never becomes markup, and a study
without its Siamese run still gets a report that says "n/a" and why. A full-page screenshot goes
to test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time

import numpy as np
import pytest

from olr import atomic
from olr.analysis import correlations
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout
from olr.workflows import study_report
from olr.workflows.study import check, collect_figures
from tests.fixtures.browser import SCREENSHOTS
from tests.fixtures.runs import make_tiny_dataset

STUDY_ID = "study-report-test"


def _record(classifier: str | None, siamese: str | None, figures: dict | None, **changes) -> dict:
    """A study record as the study workflow writes it (`olr.workflows.study.Study.begin`), finished."""
    now = time.time()
    stages = [
        {"name": name, "title": name.capitalize(), "state": state, "started": now - 60, "ended": ended, "run": run}
        for name, state, ended, run in (
            ("dataset", "done", now - 50, None),
            ("classifier", "done", now - 40, classifier),
            ("siamese", "done", now - 20, siamese),
            ("report", "running", None, None),
        )
    ]
    record = {
        "id": STUDY_ID,
        "dataset": "tiny",
        "quick": True,
        "state": "running",  # the report is the study's last stage: written while it still runs
        "started": now - 300,
        "ended": None,
        "error": None,
        "stages": stages,
        "runs": {"classifier": classifier, "siamese": siamese},
        "settings": {"classifier": {"epochs": 2}, "siamese": {"embedding_dim": 4}},
        "figures": figures,
        "checks": check(figures, None) if figures else None,
        "targets": None,
        "versions": {"olr": "0.1.0", "python": "3.11", "numpy": np.__version__},
        "dataset_checksum": "sha256:0123",
        "minutes": None,
    }
    return record | changes


@pytest.fixture(scope="module")
def study(tmp_path_factory, training_workspace, trained_classifier_run, trained_siamese_run):
    """(study folder, record, report path, seconds to write it): a study over copies of the session's runs
    (the training workspace itself gets no new folder)."""
    home = tmp_path_factory.mktemp("study_ws")
    shutil.copytree(training_workspace / "data", home / "data", ignore=shutil.ignore_patterns("stats*.npz"))
    for run in (trained_classifier_run, trained_siamese_run):
        shutil.copytree(run, home / "models" / run.name)
    classifier, siamese = (home / "models" / r.name for r in (trained_classifier_run, trained_siamese_run))
    folder = home / "models" / STUDY_ID
    folder.mkdir()
    record = _record(classifier.name, siamese.name, collect_figures(classifier, siamese))
    atomic.write_json(RunLayout(folder).study, record)
    started = time.perf_counter()
    path = study_report.write_report(folder)
    return folder, record, path, time.perf_counter() - started


def _text(page: str) -> str:
    """The report's visible text, tags removed and whitespace collapsed."""
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).replace(" ,", ",").replace("[ ", "[").replace(" ]", "]")


def _with_interval(figure: dict) -> str:
    assert figure["low"] is not None and figure["high"] is not None, "the fixture's figures have intervals"
    return f"{figure['value']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"


def test_report_names_every_headline_figure_with_its_interval_and_the_references(study):
    folder, record, path, seconds = study
    assert path == RunLayout(folder).report and path.is_file()
    text = _text(path.read_text(encoding="utf-8"))
    f = record["figures"]
    for key in ("micro_f2", "macro_f2", "macro_ap", "accuracy_tuned"):
        assert _with_interval(f[key]) in text, key
    assert "per-label-tuned thresholds · test split" in text  # each headline card names its mode and split
    assert f"all-absent baseline {f['all_absent_baseline']:.3f}" in text
    for name, key in (
        ("Siamese self-score", "siamese"),
        ("label prior", "label_prior"),
        ("classifier view", "classifier_view"),
        ("untrained network (self-score)", "untrained"),
    ):
        assert f"{name} " in text and _with_interval(f[key]) in text, name
    assert f"p = {f['siamese']['p']:.3g}" in text
    assert f["verdict"]["text"] in text and "n/a —" not in text  # every section found what it shows
    assert html.escape(correlations.minus_prior_text(f["verdict"])) in text  # what the verdict rests on
    assert "Repeat: olr study --from report.html" in text
    assert seconds < 30


def test_report_makes_no_request_of_its_own(study):
    page = study[2].read_text(encoding="utf-8")
    sources = re.findall(r"""\b(?:src|href|action|poster)\s*=\s*['"]?([^'"\s>]*)""", page, flags=re.I)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "url(" not in page and "@import" not in page and "@font-face" not in page
    assert page.count("<script") == 1  # only the embedded record, which is data (application/json)


def test_the_embedded_record_and_configs_read_back(study):
    folder, record, path, _ = study
    embedded = study_report.read_embedded(path)
    assert embedded["study"] == json.loads(json.dumps(record))
    for kind in ("classifier", "siamese"):
        run = store.load_run(folder.parent / record["runs"][kind])
        assert embedded["configs"][kind] == json.loads(json.dumps(run.config))
    assert "recipe" in embedded["configs"]["classifier"]  # what the recipe decided travels with the config


def test_read_embedded_refuses_a_file_that_is_no_report(tmp_path):
    other = tmp_path / "page.html"
    other.write_text("<html><script type='application/json' id='other'>{}</script></html>", encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(f"<script type='application/json' id='{study_report.EMBED_ID}'>{{\"study\": </script>")
    for path in (other, broken, tmp_path / "missing.html"):
        with pytest.raises(OLRError) as error:
            study_report.read_embedded(path)
        message = str(error.value)
        assert path.name in message and message.endswith(".") and "\n" not in message


def test_user_given_text_never_becomes_markup(tmp_path):
    """A dataset whose label names and colours a user wrote, a record with hostile text: all of it shows as text."""
    dataset = make_tiny_dataset(tmp_path / "data" / "evil")
    meta = json.loads((dataset / "meta.json").read_text())
    meta["labels"][0]["name"] = "<b>Urban</b> & <script>alert(1)</script>"
    meta["labels"][1]["color"] = "red;background:url(http://example.invalid/x.png)"
    (dataset / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "models").mkdir()
    hostile = "</script><script>alert('x')</script>"
    record = _record(None, None, None, dataset="evil", id="<b>study</b>", settings={"classifier": {"note": hostile}})

    page = study_report.render_report(record, models_dir=tmp_path / "models")
    assert "<b>Urban</b>" not in page and "&lt;b&gt;Urban&lt;/b&gt; &amp; &lt;script&gt;" in page
    assert "<b>study</b>" not in page and "&lt;b&gt;study&lt;/b&gt;" in page
    assert "url(" not in page and page.count("<script") == 1
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    assert study_report.read_embedded(tmp_path / "report.html")["study"]["settings"]["classifier"]["note"] == hostile


def test_a_study_without_its_siamese_run_says_na_and_why(study):
    folder, record, _, _ = study
    failed = _record(
        record["runs"]["classifier"],
        None,
        None,
        state="failed",
        error="Training run x ended with exit code 1; see its console.log for why.",
    )
    failed["stages"][2].update(state="failed", run=None)
    failed["stages"][3].update(state="skipped")
    text = _text(study_report.render_report(failed, models_dir=folder.parent))
    reason = (
        "n/a — The study has no Siamese run: its Siamese stage failed "
        "(Training run x ended with exit code 1; see its console.log for why)."
    )
    assert text.count(reason) >= 2  # the correlations and the map
    assert "No verdict: the study failed" in text
    assert _with_interval(record["figures"]["micro_f2"]) in text  # the classifier's figures still stand

    gone = _record(record["runs"]["classifier"], "no-such-run", None)
    text = _text(study_report.render_report(gone, models_dir=folder.parent))
    assert "n/a — The Siamese run no-such-run is gone" in text


def test_report_opens_offline_in_chromium_with_its_images_and_tables(study, page):
    path = study[2]
    url = path.resolve().as_uri()
    foreign = []

    def only_the_file(route):
        request_url = route.request.url
        if request_url == url or request_url.startswith("data:"):
            route.continue_()
        else:
            foreign.append(request_url)
            route.abort()

    page.route("**/*", only_the_file)
    # The report's Content-Security-Policy refuses a request before it is made; the console says so.
    console = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.goto(url)
    page.wait_for_load_state("load")
    assert foreign == [] and console == []
    sizes = page.eval_on_selector_all("img", "images => images.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) == 4 and all(done and width > 0 for done, width in sizes)  # scene + three map panels
    matrices = page.locator("table.matrix")
    assert matrices.count() == 2 and all(matrices.nth(k).is_visible() for k in range(2))
    assert page.get_by_text("Ground truth: phi of the test tiles").is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "study-report.png"), full_page=True)
    assert (SCREENSHOTS / "study-report.png").stat().st_size > 0
