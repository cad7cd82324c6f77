"""`python -m olr demo`: the whole OLR study on the demo scene in one command.

Prepares the demo dataset if needed, trains the classifier, trains the Siamese network
against it, evaluates both and computes the correlation agreement, then prints a short
report checked against the targets below. Training runs as `python -m olr train`
subprocesses, exactly as the app launches them, so the runs appear on every page.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from olr import workspace
from olr.analysis.correlations import untrained_agreement
from olr.data.demo_scene import DEMO_DATASET, ensure_demo_dataset
from olr.errors import OLRError
from olr.runs.store import RunLayout
from olr.workflows import presets

#: Targets on the demo scene's test split (issue "Make OLR work").
TARGETS = {
    "micro_f2": 0.85,  # with per-label thresholds tuned on validation
    "macro_ap": 0.70,
    "siamese_spearman": 0.80,  # siamese self-score correlation vs ground-truth phi
}
#: Labels with at least this many test positives must have at least one true positive.
MIN_SUPPORT_FOR_TP = 20

# The tuned demo configurations (presets/demo.json): `quick` trades accuracy for a run of a few minutes.
PRESETS = presets.load("demo")
CLASSIFIER = {mode: PRESETS[f"classifier_{mode}"] for mode in ("full", "quick")}
SIAMESE = {mode: PRESETS[f"siamese_{mode}"] for mode in ("full", "quick")}


@dataclass
class DemoResult:
    classifier_run: str
    siamese_run: str
    figures: dict
    checks: dict  # name -> bool

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


def _say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _train(run_id: str, settings: dict, extra_env: dict | None = None) -> Path:
    """Run `python -m olr train` to completion; its output streams through."""
    cmd = [sys.executable, "-m", "olr", "train", "--run-id", run_id]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run(cmd, env=env, cwd=str(workspace.REPO_ROOT))
    run_dir = workspace.run_path(run_id)
    if proc.returncode != 0:
        raise OLRError(
            f"Training run {run_id} ended with exit code {proc.returncode}; see {RunLayout(run_dir).console} for why."
        )
    return run_dir


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise OLRError(f"{path} is missing or unreadable; the run did not complete its evaluation.") from None


def collect_figures(classifier_dir: Path, siamese_dir: Path) -> tuple[dict, dict]:
    """Headline figures and target checks, read from the two run folders."""
    summary = _read_json(RunLayout(classifier_dir).summary)
    per_label = summary["modes"]["per_label"]
    with open(RunLayout(classifier_dir).per_label, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    starved = [r["label"] for r in rows if float(r["support"]) >= MIN_SUPPORT_FOR_TP and float(r["tp_per_label"]) == 0]
    agreement = _read_json(RunLayout(siamese_dir).agreement)
    figures = {
        "micro_f2": per_label["micro"]["f2"],
        "macro_f2": per_label["macro"]["f2"],
        "macro_ap": per_label["macro"]["ap"],
        "binary_accuracy": summary["modes"]["configured"]["binary_accuracy"],  # at the run's own threshold
        "all_absent_baseline": summary["baseline_accuracy"],
        "labels": len(rows),
        "labels_without_tp": starved,
        "siamese_spearman": agreement["siamese_self"]["spearman"],
        "siamese_pearson": agreement["siamese_self"]["pearson"],
        "siamese_rsa_spearman": agreement.get("siamese_rsa", {}).get("spearman"),
        "classifier_spearman": agreement.get("classifier_prob", {}).get("spearman"),
    }
    checks = {
        "micro_f2": figures["micro_f2"] >= TARGETS["micro_f2"],
        "macro_ap": figures["macro_ap"] >= TARGETS["macro_ap"],
        "no_starved_label": not starved,
        "siamese_spearman": figures["siamese_spearman"] >= TARGETS["siamese_spearman"],
    }
    return figures, checks


def run_demo(quick: bool = False, run_prefix: str | None = None) -> DemoResult:
    """Dataset -> classifier -> Siamese -> evaluation -> agreement; returns the figures."""
    workspace.require_writable("run the demo pipeline")

    mode = "quick" if quick else "full"
    prefix = run_prefix or f"demo-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    workspace.check_name(prefix, "run prefix")
    started = time.time()
    _say("step 1/3: demo dataset")
    last = [-1]

    def progress(done: int, total: int, message: str = "") -> None:
        pct = int(100 * done / max(total, 1))
        if pct >= last[0] + 10 or done == total:
            last[0] = pct
            _say(f"  preparing: {done}/{total} {message}")

    ensure_demo_dataset(progress=progress)
    _say(f"step 2/3: classifier ({mode})")
    classifier_id = f"{prefix}-classifier"
    classifier_dir = _train(classifier_id, {"kind": "classifier", "dataset": DEMO_DATASET, **CLASSIFIER[mode]})
    _say(f"step 3/3: Siamese network against {classifier_id} ({mode})")
    siamese_id = f"{prefix}-siamese"
    siamese_dir = _train(siamese_id, {"kind": "siamese", "classifier_run": classifier_id, **SIAMESE[mode]})
    figures, checks = collect_figures(classifier_dir, siamese_dir)
    # Chance level: an untrained network of the same architecture on the same tiles.

    figures["untrained_spearman"] = untrained_agreement(siamese_id)["siamese_self"]["spearman"]
    figures["minutes"] = round((time.time() - started) / 60, 1)
    return DemoResult(classifier_id, siamese_id, figures, checks)


def report(result: DemoResult) -> str:
    f = result.figures
    ok = {True: "ok", False: "BELOW TARGET"}
    lines = [
        f"OLR demo — classifier {result.classifier_run}, Siamese {result.siamese_run} ({f['minutes']} min)",
        f"  test micro-F2 (per-label thresholds) {f['micro_f2']:.3f}  target >= {TARGETS['micro_f2']}  "
        f"{ok[result.checks['micro_f2']]}",
        f"  test macro AP                        {f['macro_ap']:.3f}  target >= {TARGETS['macro_ap']}  "
        f"{ok[result.checks['macro_ap']]}",
        f"  binary accuracy at the configured threshold {f['binary_accuracy']:.3f} "
        f"vs all-absent baseline {f['all_absent_baseline']:.3f}",
        f"  labels with >= {MIN_SUPPORT_FOR_TP} test positives and no true positive: "
        + (", ".join(f["labels_without_tp"]) or "none")
        + f"  {ok[result.checks['no_starved_label']]}",
        f"  Siamese agreement with ground-truth phi: Spearman {f['siamese_spearman']:.3f} "
        f"(Pearson {f['siamese_pearson']:.3f})  target >= {TARGETS['siamese_spearman']}  "
        f"{ok[result.checks['siamese_spearman']]}",
    ]
    lines.append(
        f"  untrained Siamese network on the same tiles (chance level): Spearman {f['untrained_spearman']:.3f}"
    )
    if f.get("classifier_spearman") is not None:
        lines.append(f"  classifier probability correlation vs phi: Spearman {f['classifier_spearman']:.3f}")
    lines.append("  all targets met" if result.passed else "  some targets not met (see above)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small models and few epochs (a few minutes; for tests and first impressions)",
    )
    parser.add_argument("--run-prefix", metavar="NAME", help="prefix of the two run ids (default demo-<UTC time>)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")


def demo_command(args) -> int:
    result = run_demo(quick=args.quick, run_prefix=args.run_prefix)
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "classifier_run": result.classifier_run,
                    "siamese_run": result.siamese_run,
                    "figures": result.figures,
                    "checks": result.checks,
                    "quick": bool(args.quick),
                },
                indent=2,
            )
        )
    return 0
