"""`python -m olr demo --quick` end to end: dataset, classifier, Siamese, evaluation, agreement."""

import json
import os
import subprocess
import sys

from olr import workspace


def test_demo_quick_pipeline_learns(tmp_path):
    home = tmp_path / "home"
    out = tmp_path / "demo.json"
    env = {**os.environ, "OLR_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "olr", "demo", "--quick", "--run-prefix", "t", "--json", str(out)],
        cwd=workspace.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    result = json.loads(out.read_text())
    figures = result["figures"]
    # Both runs exist, finished, with their evaluation and correlation outputs.
    for run_id in (result["classifier_run"], result["siamese_run"]):
        status = json.loads((home / "models" / run_id / "status.json").read_text())
        assert status["state"] == "finished"
    assert (home / "models" / result["classifier_run"] / "evaluation" / "summary.json").exists()
    assert (home / "models" / result["siamese_run"] / "correlations" / "agreement.json").exists()
    # The report printed the headline figures with their split, intervals and the three references.
    for text in ("TEST split, reported once", "95 % spatial block-bootstrap interval", "label prior", "untrained"):
        assert text in proc.stdout, proc.stdout
    siamese, prior, untrained = figures["siamese"], figures["label_prior"], figures["untrained"]
    for figure in (figures["micro_f2"], figures["macro_ap"], siamese, prior):
        # A percentile interval need not contain its estimate; it must exist and be ordered.
        assert figure["low"] is not None and figure["low"] <= figure["high"], figures
    # Learning happened: the trained Siamese network agrees with the ground truth clearly
    # better than an untrained network of the same architecture on the same tiles.
    assert siamese["value"] > untrained["value"] + 0.2, figures
    assert figures["verdict"]["outcome"] in ("beats", "tie", "below")  # judged against the label prior
    # The classifier is not the all-absent collapse of the thesis (at the configured threshold).
    assert figures["accuracy_configured"]["value"] > figures["all_absent_baseline"], figures
