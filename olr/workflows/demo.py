"""`python -m olr demo`: the whole OLR study on the demo scene in one command.

Prepares the demo dataset if needed, trains the classifier, trains the Siamese network
against it, evaluates both and computes the correlation agreement, then prints a short
report checked against the targets below. Training runs as `python -m olr train`
subprocesses, exactly as the app launches them, so the runs appear on every page.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from olr import workspace
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


def _figure(mode: dict, key: str, value) -> dict:
    """{"value", "low", "high"} of one headline figure: its estimate and its 95 % block-bootstrap interval."""
    band = mode.get("intervals", {}).get(key, {})
    return {"value": value, "low": band.get("low"), "high": band.get("high")}


def _rho(entry: dict | None) -> dict:
    """{"value", "low", "high", "p"} of one agreement entry of agreement.json (None values when absent)."""
    entry = entry or {}
    band = entry.get("interval") or {}
    return {
        "value": entry.get("spearman"),
        "low": band.get("low"),
        "high": band.get("high"),
        "p": (entry.get("permutation") or {}).get("p"),
    }


def collect_figures(classifier_dir: Path, siamese_dir: Path) -> tuple[dict, dict]:
    """Headline figures (test split, with their intervals and references) and target checks.

    Classifier figures are at per-label thresholds tuned on validation (and accuracy also at
    those thresholds, against the all-absent baseline); the Siamese agreement is read beside
    its three references: the label prior (training-split labels, no image), the classifier's
    own probability view and an untrained network."""
    summary = _read_json(RunLayout(classifier_dir).summary)
    tuned, configured = summary["modes"]["per_label"], summary["modes"]["configured"]
    agreement = _read_json(RunLayout(siamese_dir).agreement_for("test"))
    untrained = agreement.get("untrained", {}).get("siamese_self")
    figures = {
        "split": "test",
        "threshold_mode": tuned.get("mode", "per-label-tuned"),
        "thresholds_from": tuned.get("thresholds_from", "val"),
        "n_tiles": summary.get("n_tiles"),
        "n_blocks": summary.get("n_blocks"),
        "micro_f2": _figure(tuned, "micro_f2", tuned["micro"]["f2"]),
        "macro_f2": _figure(tuned, "macro_f2", tuned["macro"]["f2"]),
        "samples_f2": _figure(tuned, "samples_f2", (tuned.get("samples") or {}).get("f2")),
        "macro_ap": {
            "value": tuned["macro"]["ap"],
            "low": (summary.get("macro_ap_interval") or {}).get("low"),
            "high": (summary.get("macro_ap_interval") or {}).get("high"),
        },
        "accuracy_tuned": _figure(tuned, "accuracy", tuned["binary_accuracy"]),
        "accuracy_configured": _figure(configured, "accuracy", configured["binary_accuracy"]),
        "all_absent_baseline": summary["baseline_accuracy"],
        "labels": len(summary.get("labels", [])) or None,
        "starved_labels": sorted({lab for m in summary["modes"].values() for lab in m.get("starved_labels") or []}),
        "siamese": _rho(agreement.get("siamese_self")),
        "label_prior": _rho(agreement.get("label_prior")),
        "classifier_view": _rho(agreement.get("classifier_prob")),
        "untrained": _rho(untrained),
        "verdict": agreement.get("verdict", {}),
        "warnings": [w for w in summary.get("interval_warnings", []) if w],
    }
    checks = {
        "micro_f2": figures["micro_f2"]["value"] >= TARGETS["micro_f2"],
        "macro_ap": figures["macro_ap"]["value"] >= TARGETS["macro_ap"],
        "no_starved_label": not figures["starved_labels"],
        "accuracy_beats_baseline": all(m.get("beats_baseline", True) for m in summary["modes"].values()),
        "siamese_spearman": (figures["siamese"]["value"] or -1.0) >= TARGETS["siamese_spearman"],
        "siamese_beats_label_prior": figures["verdict"].get("outcome") == "beats",
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
    figures["minutes"] = round((time.time() - started) / 60, 1)
    return DemoResult(classifier_id, siamese_id, figures, checks)


def _fmt(figure: dict) -> str:
    """ "0.867 [0.841, 0.890]": a figure with its 95 % interval (or "n/a")."""
    value = figure.get("value")
    if value is None:
        return "n/a"
    if figure.get("low") is None or figure.get("high") is None:
        return f"{value:.3f} (no interval)"
    return f"{value:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"


def report(result: DemoResult) -> str:
    """The demo's figures as printed: each with its split, threshold mode, 95 % interval and references."""
    f = result.figures
    ok = {True: "ok", False: "BELOW TARGET"}
    mode = f"{f['threshold_mode']} thresholds (tuned on {f['thresholds_from']})"
    lines = [
        f"OLR demo — classifier {result.classifier_run}, Siamese {result.siamese_run} ({f['minutes']} min)",
        f"  TEST split, reported once: {f['n_tiles']} tiles in {f['n_blocks']} spatial blocks; "
        "[low, high] = 95 % spatial block-bootstrap interval",
        f"  micro F2, {mode}: {_fmt(f['micro_f2'])}  target >= {TARGETS['micro_f2']}  {ok[result.checks['micro_f2']]}",
        f"  macro F2, {mode}: {_fmt(f['macro_f2'])};  sample-averaged F2: {_fmt(f['samples_f2'])}",
        f"  macro AP (no threshold): {_fmt(f['macro_ap'])}  target >= {TARGETS['macro_ap']}  "
        f"{ok[result.checks['macro_ap']]}",
        f"  binary accuracy: {_fmt(f['accuracy_tuned'])} at {f['threshold_mode']} thresholds, "
        f"{_fmt(f['accuracy_configured'])} at the configured threshold; all-absent baseline "
        f"{f['all_absent_baseline']:.3f}  {ok[result.checks['accuracy_beats_baseline']]}",
        "  labels with enough test positives and no true positive (any threshold mode): "
        + (", ".join(f["starved_labels"]) or "none")
        + f"  {ok[result.checks['no_starved_label']]}",
        f"  Siamese self-score agreement with ground-truth phi (Spearman ρ): {_fmt(f['siamese'])}"
        f"  target >= {TARGETS['siamese_spearman']}  {ok[result.checks['siamese_spearman']]}",
        "  references it must beat:",
        f"    label prior (training-split labels, no image): {_fmt(f['label_prior'])}",
        f"    classifier probability view (its teacher):     {_fmt(f['classifier_view'])}",
        f"    untrained network (chance level):              {_fmt(f['untrained'])}",
    ]
    verdict = f["verdict"]
    if verdict:
        shares = [
            f"above the {name} in {share:.0%} of paired resamples"
            for name, share in (
                ("label prior", verdict.get("share_above_prior")),
                ("classifier view", verdict.get("share_above_classifier")),
            )
            if share is not None
        ]
        lines.append(
            f"  verdict: the Siamese view {verdict.get('text', 'has no verdict')}"
            + (f" ({'; '.join(shares)})" if shares else "")
            + f"  {ok[result.checks['siamese_beats_label_prior']]}"
        )
    lines += [f"  warning: {w}" for w in f["warnings"]]
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
