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
    # The report printed the headline figures.
    assert "Siamese agreement with ground-truth phi" in proc.stdout
    # Learning happened: the trained Siamese network agrees with the ground truth clearly
    # better than an untrained network of the same architecture on the same tiles.
    assert figures["siamese_spearman"] > figures["untrained_spearman"] + 0.2, figures
    # The classifier is not the all-absent collapse of the thesis.
    assert figures["binary_accuracy"] > figures["all_absent_baseline"], figures
