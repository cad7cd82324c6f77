"""Training configuration: one schema with defaults for classifier and Siamese runs.

A config is a flat dict of options. `OPTIONS` declares each once: default, type, range,
help, and where the Train page shows it (section, label, collapsed or not, words for its
choices); the CLI flags (`add_option_flags`), the Train page (`page_layout`) and the
workflows' presets (`check_preset`, files in olr/workflows/presets/) all derive from it.
`resolve(raw)` fills defaults and validates; every problem raises `OLRError` with one
sentence naming the key and value (unknown keys get the closest valid key suggested).
Sources, later ones winning: defaults < `--config FILE` (JSON) < `--set key=value` /
`--key value` flags.

The run's `config.json` holds the resolved options plus facts derived at start-up
(`DERIVED_KEYS`: resolved labels, dataset path and meta checksum, tile shape, ...). Those
keys are ignored when a config file is read back, so an old run's `config.json` can be
passed to `--config` to repeat it. Code reading a stored config goes through `upgrade`,
the one place that knows what an old run's missing keys mean.

No TensorFlow here: validation runs before anything heavy is imported.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from olr.data.label_schemes import parse_json_strictly, read_json_file, short_repr
from olr.errors import OLRError
from olr.runs.store import current_metric_name
from olr.training.backbones import BACKBONES

KINDS = ("classifier", "siamese")
MODELS = ("resnet", "thesis", *BACKBONES)
LOSSES = ("bce", "focal", "weighted_bce_batch", "weighted_bce_global", "asl")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
#: Keras dtype policies a run may compute with ("auto": `olr.training.fit.compute_policy` decides)
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
#: what a classifier run logs (`olr.training.keras_metrics`); the PR-AUCs are Keras's interpolated areas,
#: not the evaluation's average precision (runs before this name logged them as macro_ap/micro_ap)
CLASSIFIER_METRICS = (
    "binary_accuracy",
    "micro_f1",
    "macro_f1",
    "micro_f2",
    "macro_f2",
    "macro_pr_auc",
    "micro_pr_auc",
)
CHECKPOINT_METRICS = ("val_loss", *(f"val_{m}" for m in CLASSIFIER_METRICS))
#: the logged metrics in words; the checkpoint metrics' titles derive from them
METRIC_TITLES = {
    "loss": "loss",
    "binary_accuracy": "binary accuracy",
    "micro_f1": "micro F1",
    "macro_f1": "macro F1",
    "micro_f2": "micro F2",
    "macro_f2": "macro F2",
    "macro_pr_auc": "macro PR-AUC",
    "micro_pr_auc": "micro PR-AUC",
}
MODEL_TITLES = {
    "resnet": "Residual network",
    "thesis": "Thesis network (appendix A)",
    **{name: backbone.title for name, backbone in BACKBONES.items()},
}
#: config["model"] of classifier runs not trained here (`olr.workflows.teachers`): not a choice of the form
REGISTERED, ENSEMBLE = "registered", "ensemble"
TEACHER_TITLES = {REGISTERED: "Registered model", ENSEMBLE: "Ensemble of runs"}


#: The Train page's form sections, in order ("kind" is chosen above the form).
KIND_SECTION = "What to train"
DATA, ARCHITECTURE, LOSS, BATCHES, PAIRS, OPTIMISATION = (
    "Data and labels",
    "Architecture",
    "Loss and decision",
    "Batches and augmentation",
    "Siamese pairs and occlusion",
    "Optimisation",
)
SECTIONS = (DATA, ARCHITECTURE, LOSS, BATCHES, PAIRS, OPTIMISATION)


@dataclass(frozen=True)
class Option:
    """One training option: its value rules, its help, and where and how the Train page shows it."""

    default: Any
    type: str  # "int", "float", "bool", "str", "scheme", "auto_bool" ("auto", true or false)
    help: str
    kinds: tuple[str, ...] = KINDS
    _: KW_ONLY
    section: str  # a title of SECTIONS (KIND_SECTION for "kind")
    label: str  # the widget's label on the Train page
    advanced: bool = False  # shown under the form's collapsed "More options" rather than in its section
    choices: tuple = ()
    titles: Mapping[str, str] = field(default_factory=dict, compare=False)  # choice -> words for people
    min: float | None = None  # inclusive unless min_exclusive
    max: float | None = None
    min_exclusive: bool = False
    nullable: bool = False
    step: float | None = None  # the page's number-input step (None: derived from the default)

    def title(self, value: Any) -> str:
        """A choice value in words ("bce" -> "Binary cross-entropy"); other values as text."""
        return self.titles.get(value, str(value)) if isinstance(value, str) else str(value)


C, S = ("classifier",), ("siamese",)

OPTIONS: dict[str, Option] = {
    "kind": Option(
        "classifier",
        "str",
        "what to train",
        section=KIND_SECTION,
        label="What to train",
        choices=KINDS,
        titles={"classifier": "Multi-label classifier", "siamese": "Siamese network (OLR)"},
    ),
    "dataset": Option(
        None,
        "str",
        "dataset name (or folder); a Siamese run defaults to its classifier's",
        section=DATA,
        label="Dataset",
        nullable=True,
    ),
    "classifier_run": Option(
        None,
        "str",
        "the finished classifier run whose probabilities the Siamese imitates",
        S,
        section=DATA,
        label="Classifier run",
        nullable=True,
    ),
    "model": Option(
        "resnet",
        "str",
        "classifier family: resnet (compact residual), thesis (appendix A) or a keras.applications backbone "
        "(random initial weights, or ImageNet ones from backbone_weights)",
        C,
        section=ARCHITECTURE,
        label="Model",
        choices=MODELS,
        titles=MODEL_TITLES,
    ),
    "trunk": Option(
        None,
        "str",
        "Siamese trunk family; default: the classifier's family",
        S,
        section=ARCHITECTURE,
        label="Trunk (blank: classifier's)",
        choices=MODELS,
        titles=MODEL_TITLES,
        nullable=True,
    ),
    "width": Option(
        1.0,
        "float",
        "channel-width multiplier (resnet and thesis families; a keras.applications backbone has its own widths)",
        section=ARCHITECTURE,
        label="Width",
        min=0.01,
        max=16,
        step=0.25,
    ),
    "depth": Option(
        1, "int", "residual blocks per stage (resnet family)", section=ARCHITECTURE, label="Depth", min=1, max=16
    ),
    "backbone_weights": Option(
        None,
        "str",
        "a keras.applications backbone's ImageNet weights without the top: path of the file (relative paths from "
        "the project folder), e.g. the *_notop.h5 Keras downloads; adapted to the dataset's bands; blank: random "
        "initial weights (nothing is ever downloaded)",
        section=ARCHITECTURE,
        label="Backbone ImageNet weights file (blank: random)",
        advanced=True,
        nullable=True,
    ),
    "dropout": Option(
        0.2,
        "float",
        "dropout before the classifier output",
        C,
        section=ARCHITECTURE,
        label="Dropout",
        min=0.0,
        max=0.95,
    ),
    "embedding_dim": Option(
        16,
        "int",
        "k: embedding size per label",
        S,
        section=ARCHITECTURE,
        label="Embedding size k per label",
        min=1,
        max=4096,
    ),
    "scheme": Option(
        None,
        "scheme",
        "label scheme (level3/level2/level1/ben19/thesis_c3/thesis_c5, a JSON file or a mapping); "
        "default: the dataset's labels",
        C,
        section=DATA,
        label="Label scheme",
        nullable=True,
    ),
    "min_fraction": Option(
        None,
        "float",
        "area fraction from which a label counts as present; default: the dataset's",
        C,
        section=DATA,
        label="Min. area fraction (blank: dataset's)",
        min=0.0,
        max=1.0,
        min_exclusive=True,
        nullable=True,
    ),
    "prune_below": Option(
        None,
        "int",
        "drop labels present in fewer than this many training tiles (0: none); blank: 1 % of the training "
        "tiles, between 1 and 50",
        C,
        section=DATA,
        label="Prune labels in fewer training tiles than (blank: 1 % of them)",
        min=0,
        nullable=True,
    ),
    "on_missing_label": Option(
        "prune",
        "str",
        "a label absent from the training split is pruned, warned about, or an error",
        C,
        section=DATA,
        label="Label absent from training split",
        advanced=True,
        choices=("prune", "warn", "error"),
        titles={"prune": "Prune the label", "warn": "Keep it, with a warning", "error": "Refuse to train"},
    ),
    "loss": Option(
        "bce",
        "str",
        "training loss",
        C,
        section=LOSS,
        label="Loss",
        choices=LOSSES,
        titles={
            "bce": "Binary cross-entropy",
            "focal": "Focal loss",
            "weighted_bce_batch": "Weighted BCE (per batch)",
            "weighted_bce_global": "Weighted BCE (global positive weights)",
            "asl": "Asymmetric loss (ASL)",
        },
    ),
    "focal_gamma": Option(
        2.0, "float", "focal loss focusing parameter gamma", C, section=LOSS, label="Focal gamma", min=0.0, max=10.0
    ),
    "focal_alpha": Option(
        None,
        "float",
        "focal loss class balance alpha (unset: no balancing)",
        C,
        section=LOSS,
        label="Focal alpha (blank: none)",
        min=0.0,
        max=1.0,
        nullable=True,
    ),
    "pos_weight_max": Option(
        100.0,
        "float",
        "clip of the global positive weights (weighted_bce_global)",
        C,
        section=LOSS,
        label="Max. positive weight",
        advanced=True,
        min=1.0,
        max=1e6,
    ),
    # ASL's defaults are the paper's and the official training script's (its loss class defaults gamma_pos to 1)
    "asl_gamma_neg": Option(
        4.0,
        "float",
        "asymmetric loss: focusing exponent gamma- of the absent labels (easy negatives weigh less)",
        C,
        section=LOSS,
        label="ASL gamma (negatives)",
        min=0.0,
        max=10.0,
    ),
    "asl_gamma_pos": Option(
        0.0,
        "float",
        "asymmetric loss: focusing exponent gamma+ of the present labels",
        C,
        section=LOSS,
        label="ASL gamma (positives)",
        advanced=True,
        min=0.0,
        max=10.0,
    ),
    "asl_margin": Option(
        0.05,
        "float",
        "asymmetric loss: probability margin m (the official code's clip): an absent label's probability counts "
        "as m lower, so below m it costs nothing",
        C,
        section=LOSS,
        label="ASL probability margin",
        advanced=True,
        min=0.0,
        max=0.5,
        step=0.01,
    ),
    "shuffle": Option(
        True,
        "bool",
        "randomized batches (false: batches of consecutive tiles, the thesis's in-order contrast)",
        C,
        section=BATCHES,
        label="Randomized batches",
    ),
    "augment": Option(
        True, "bool", "random flips and 90-degree rotations", C, section=BATCHES, label="Flips and 90° rotations"
    ),
    "augment_shift": Option(
        False,
        "bool",
        "shift each tile by up to 1/8 of its side each way, the edge mirrored into the gap",
        C,
        section=BATCHES,
        label="Random shifts",
    ),
    "augment_jitter": Option(
        False,
        "bool",
        "random contrast (x0.9 to x1.1) and brightness (±0.1 std) per tile and band, around the band's mean",
        C,
        section=BATCHES,
        label="Brightness and contrast jitter",
    ),
    "threshold": Option(
        0.5,
        "float",
        "decision threshold for the binary metrics",
        C,
        section=LOSS,
        label="Threshold",
        min=0.0,
        max=1.0,
        min_exclusive=True,
    ),
    "occlusion_min": Option(
        0.05,
        "float",
        "smallest occlusion rectangle side, as a fraction of the tile side",
        S,
        section=PAIRS,
        label="Occlusion min. side",
        min=0.0,
        max=1.0,
        min_exclusive=True,
    ),
    "occlusion_max": Option(
        0.2,
        "float",
        "largest occlusion rectangle side, as a fraction of the tile side",
        S,
        section=PAIRS,
        label="Occlusion max. side",
        min=0.0,
        max=1.0,
        min_exclusive=True,
    ),
    "occlusion_fill": Option(
        "mean",
        "str",
        "occluded pixels: band mean (= 0 after normalisation) or raw zero (the thesis's black)",
        S,
        section=PAIRS,
        label="Occluded pixels",
        advanced=True,
        choices=("mean", "zero"),
        titles={"mean": "Band mean", "zero": "Zero (the thesis's black)"},
    ),
    "init_from_classifier": Option(
        True,
        "bool",
        "start the Siamese trunk from the classifier's trained trunk (when trunk, width and depth match)",
        S,
        section=PAIRS,
        label="Start the trunk from the classifier's",
    ),
    "trunk_statistics": Option(
        "classifier",
        "str",
        "batch-norm statistics of the Siamese trunk while it trains: the classifier's, kept (its batch norms run "
        "as at inference, as when fine-tuning a trained network; scales and offsets still train; about a quarter "
        "less time per step) or each batch's (moving averages updated); a trunk not started from the classifier's "
        "always uses each batch's",
        S,
        section=PAIRS,
        label="Trunk batch-norm statistics",
        advanced=True,
        choices=("classifier", "batch"),
        titles={"classifier": "The classifier's, kept", "batch": "Each batch's"},
    ),
    "self_pair_share": Option(
        1.0,
        "float",
        "share of pairs that pair a tile with an independently occluded copy of itself "
        "(teaches the self-score the correlations use)",
        S,
        section=PAIRS,
        label="Self-pair share",
        min=0.0,
        max=1.0,
    ),
    "pairs_per_epoch": Option(
        0,
        "int",
        "training pairs per epoch (0: one per training tile)",
        S,
        section=PAIRS,
        label="Pairs per epoch (0: one per tile)",
        min=0,
    ),
    "val_pairs": Option(
        512,
        "int",
        "fixed validation pairs (fixed occlusions)",
        S,
        section=PAIRS,
        label="Validation pairs",
        advanced=True,
        min=1,
    ),
    "epochs": Option(
        None,
        "int",
        "number of epochs; blank: from the step budget train_steps (at least 8 epochs)",
        section=OPTIMISATION,
        label="Epochs (blank: from the step budget)",
        min=1,
        max=100000,
        nullable=True,
    ),
    "train_steps": Option(
        800,
        "int",
        "optimizer steps of the whole run when epochs is blank: the budget the recipe spreads over the epochs, "
        "so a small dataset trains enough and a large one does not run for days",
        section=OPTIMISATION,
        label="Step budget (when epochs is blank)",
        min=1,
        max=10_000_000,
    ),
    "batch_size": Option(
        None,
        "int",
        "batch size (tiles per batch; pairs per batch for Siamese); blank: from the tile size and the training "
        "split (64 tiles of 64x64 px, Siamese 32 pairs, fewer for larger tiles or small splits)",
        section=BATCHES,
        label="Batch size (blank: from the tile size)",
        min=1,
        max=65536,
        nullable=True,
    ),
    "learning_rate": Option(
        2e-3,
        "float",
        "learning rate",
        section=OPTIMISATION,
        label="Learning rate",
        min=0.0,
        max=10.0,
        min_exclusive=True,
        step=1e-4,
    ),
    "optimizer": Option(
        "adam",
        "str",
        "optimizer",
        section=OPTIMISATION,
        label="Optimizer",
        choices=OPTIMIZERS,
        titles={"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "sgd": "SGD"},
    ),
    "lr_schedule": Option(
        "cosine",
        "str",
        "learning rate over the run: constant, or cosine decay to 5% of it",
        section=OPTIMISATION,
        label="Learning-rate schedule",
        choices=("constant", "cosine"),
        titles={"constant": "Constant", "cosine": "Cosine decay to 5%"},
    ),
    "early_stopping_patience": Option(
        8,
        "int",
        "epochs without improvement before stopping (0: never)",
        section=OPTIMISATION,
        label="Early-stopping patience (0: off)",
        min=0,
    ),
    "checkpoint_metric": Option(
        "val_macro_pr_auc",
        "str",
        "validation metric that selects best.keras (Siamese: val_loss); macro averages over the labels with "
        "validation positives",
        section=OPTIMISATION,
        label="Best checkpoint by",
        choices=CHECKPOINT_METRICS,
        titles={m: f"Validation {METRIC_TITLES[m.removeprefix('val_')]}" for m in CHECKPOINT_METRICS},
    ),
    "jit_compile": Option(
        "auto",
        "auto_bool",
        "XLA-compile the training step: auto (on a GPU only; on the CPU XLA made the steps slower), true or false",
        section=OPTIMISATION,
        label="XLA-compile the step",
        advanced=True,
    ),
    "precision": Option(
        "auto",
        "str",
        "the numbers the layers compute with (the weights stay float32): auto is bfloat16 on a CPU that "
        "computes it natively (AMX or AVX512-BF16), float32 elsewhere; mixed float16 (with loss scaling) "
        "or bfloat16 are for GPUs that have them",
        section=OPTIMISATION,
        label="Compute precision",
        advanced=True,
        choices=PRECISIONS,
        titles={
            "auto": "Automatic (bfloat16 where the CPU has it)",
            "float32": "float32",
            "mixed_bfloat16": "Mixed bfloat16",
            "mixed_float16": "Mixed float16 (loss scaling)",
        },
    ),
    "log_every_steps": Option(
        20,
        "int",
        "a metrics line every this many training steps",
        section=OPTIMISATION,
        label="Log every n steps",
        advanced=True,
        min=1,
    ),
    "seed": Option(0, "int", "random seed", section=OPTIMISATION, label="Seed", min=0, max=2**31 - 1),
    "max_train_tiles": Option(
        0,
        "int",
        "use at most this many training tiles (0: all)",
        section=DATA,
        label="Max. training tiles (0: all)",
        advanced=True,
        min=0,
    ),
    "max_val_tiles": Option(
        None,
        "int",
        "use at most this many validation tiles during training (0: all); blank: all up to 4096",
        section=DATA,
        label="Max. validation tiles (0: all, blank: up to 4096)",
        advanced=True,
        min=0,
        nullable=True,
    ),
}

#: Keys written into config.json at start-up; ignored (recomputed) when read as input.
DERIVED_KEYS = (
    "labels",
    "dataset_path",
    "dataset_checksum",
    "tile_shape",
    "n_train",
    "n_val",
    "pruned_labels",
    "created",
    "olr_version",
    "run_id",
    "classifier_labels",
    "val_all_absent_accuracy",
    "val_labels_without_positives",
    "epoch_steps",
    "recipe",
)


def options_for(kind: str) -> dict[str, Option]:
    return {k: o for k, o in OPTIONS.items() if kind in o.kinds}


def page_layout(kind: str) -> list[tuple[str, list[str], list[str]]]:
    """The Train page's form for `kind`: (section, keys shown, keys under "More options") in SECTIONS
    order, schema order within a section; sections without an option of `kind` are left out."""
    valid = options_for(kind)
    layout = []
    for section in SECTIONS:
        keys = [k for k, o in valid.items() if o.section == section]
        if keys:
            layout.append((section, [k for k in keys if not valid[k].advanced], [k for k in keys if valid[k].advanced]))
    return layout


def defaults(kind: str = "classifier") -> dict:
    d = {k: o.default for k, o in options_for(kind).items()}
    d["kind"] = kind
    if kind == "siamese":
        # the tuned Siamese recipe: a gentler rate, and every epoch of the budget trained (no early stop)
        d.update(checkpoint_metric="val_loss", learning_rate=1e-3, early_stopping_patience=0, train_steps=950)
    return d


def add_option_flags(group) -> None:
    """One `--key-name VALUE` flag per option on an argparse parser or group (dest `opt_<key>`)."""
    for key, opt in OPTIONS.items():
        default = defaults_text(key)
        choices = f" [{'/'.join(opt.choices)}]" if opt.choices else ""
        # argparse formats help with %-interpolation: a literal % must be doubled
        help_ = f"{opt.help}{choices}; default {default} ({'/'.join(opt.kinds)})".replace("%", "%%")
        group.add_argument(f"--{key.replace('_', '-')}", dest=f"opt_{key}", metavar="VALUE", help=help_)


def flag_values(args) -> dict:
    """The options given as flags by `add_option_flags` (parsed with `parse_value`)."""
    values = {}
    for key in OPTIONS:
        value = getattr(args, f"opt_{key}", None)
        if value is not None:
            values[key] = parse_value(value)
    return values


def defaults_text(key: str) -> str:
    """The default of `key` in words, per kind where the kinds differ (e.g. "64 (siamese 32)")."""
    opt = OPTIONS[key]
    per_kind = {kind: defaults(kind).get(key) for kind in opt.kinds}

    def text(value) -> str:
        return "blank" if value is None else f"{value}"  # what blank means is in the option's help

    first = per_kind[opt.kinds[0]]
    others = [f"{kind} {text(value)}" for kind, value in per_kind.items() if value != first]
    return text(first) + (f" ({', '.join(others)})" if others else "")


def parse_value(text: str) -> Any:
    """A flag value as JSON when it parses (numbers, true/false, null, objects), else the string."""
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):  # not JSON, a 4300+ digit number, nesting too deep
        low = str(text).strip().lower()
        if low in ("true", "yes", "on"):
            return True
        if low in ("false", "no", "off"):
            return False
        if low in ("none", "null", ""):
            return None
        return text
    if isinstance(value, dict):  # a mapping typed as a flag: json.loads kept the last of two equal keys
        return parse_json_strictly(text, f"The value {short_repr(text)}")
    return value


def parse_assignments(items: list[str] | None) -> dict:
    """`["epochs=3", "loss=focal"]` -> {"epochs": 3, "loss": "focal"}."""
    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise OLRError(f"The setting {item!r} is not of the form key=value; write e.g. --set epochs=5.")
        out[key.strip()] = parse_value(value.strip())
    return out


def load_file(path: str | Path) -> dict:
    """Read a JSON config file (derived keys of a previous run's config.json are dropped)."""
    p = Path(path)
    data = read_json_file(p, "config file", "the path of a JSON file")
    if not isinstance(data, dict):
        raise OLRError(f'The config file {p} must hold a JSON object of options like {{"epochs": 5}}.')
    return {k: v for k, v in data.items() if k not in DERIVED_KEYS}


def resolve(raw: dict, *, complete: bool = True) -> dict:
    """Defaults + `raw`, validated. Raises OLRError naming the first bad key or value.

    `complete=False` checks a partial config (a preset) without requiring what a run needs
    besides its settings: a dataset (classifier) or a classifier run (Siamese).
    """
    raw = _current_names({k: v for k, v in dict(raw).items() if k not in DERIVED_KEYS})
    kind = raw.get("kind")
    if kind is None:
        kind = "siamese" if raw.get("classifier_run") else "classifier"
    kind = _check("kind", kind, OPTIONS["kind"])
    valid = options_for(kind)
    for key in raw:
        if key not in valid:
            if key in OPTIONS:
                raise OLRError(
                    f"The config key {key!r} is for {' and '.join(OPTIONS[key].kinds)} runs, not {kind} runs; "
                    "remove it or set kind accordingly."
                )
            close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys are {', '.join(valid)}."
            raise OLRError(f"The config key {short_repr(key)} does not exist; {hint}")
    cfg = defaults(kind)
    for key, value in raw.items():
        cfg[key] = _check(key, value, valid[key])
    if complete and kind == "classifier" and not cfg["dataset"]:
        raise OLRError("No dataset given; set dataset=<name> (see python -m olr datasets).")
    if kind == "siamese":
        if complete and not cfg["classifier_run"]:
            raise OLRError(
                "A Siamese run needs a classifier run; set classifier_run=<run id> of a finished classifier run."
            )
        if cfg["occlusion_min"] > cfg["occlusion_max"]:
            raise OLRError(
                f"occlusion_min={cfg['occlusion_min']} is larger than occlusion_max={cfg['occlusion_max']}; "
                "make the minimum at most the maximum."
            )
        if cfg["checkpoint_metric"] != "val_loss":
            raise OLRError(
                f"A Siamese run selects its best checkpoint by val_loss (MSE), not {cfg['checkpoint_metric']!r}; "
                "remove checkpoint_metric."
            )
    return cfg


def check_preset(settings: Any, name: str) -> dict:
    """`settings` (partial options, "kind" among them unless classifier) validated as a preset named `name`.

    Returns them as given (a preset holds only what differs from the defaults). Raises OLRError
    with one sentence naming the preset.
    """
    if not isinstance(settings, dict):
        raise OLRError(f'The preset {name} must be a JSON object of options like {{"epochs": 5}}.')
    try:
        resolve(settings, complete=False)
    except OLRError as e:
        text = str(e)
        raise OLRError(f"In the preset {name}, {text[:1].lower()}{text[1:]}") from None
    return dict(settings)


#: Options added after runs were first stored, and the value a stored config without them reads
#: as. The runs from before them trained without them (no self pairs, a constant rate, a trunk
#: from scratch), but a resumed old run has always been re-resolved, i.e. given these values.
#: The shift and jitter switches read as off, the precision as float32 and the Siamese trunk's statistics
#: as each batch's: old runs trained so, whatever the default becomes.
ADDED_LATER = {
    "init_from_classifier": True,
    "self_pair_share": 0.9,
    "trunk_statistics": "batch",
    "lr_schedule": "cosine",
    "augment_shift": False,
    "augment_jitter": False,
    "precision": "float32",
}


def upgrade(stored: dict) -> dict:
    """A run's stored config.json with every option of its kind present: the one reading of old runs.

    A key of ADDED_LATER that an old run lacks reads as its value there; any other missing
    option (a hand-written config) reads as its default for the run's kind, as `resolve` gives.
    The kind of a config without one is inferred as `resolve` does. Derived keys stay as stored.
    A checkpoint metric named as runs once logged it reads by its current name (as in `resolve`).
    """
    stored = dict(stored or {})
    kind = stored.get("kind") or ("siamese" if stored.get("classifier_run") else "classifier")
    if kind not in KINDS:
        return stored
    later = {k: v for k, v in ADDED_LATER.items() if kind in OPTIONS[k].kinds}
    return {**defaults(kind), **later, **_current_names(stored)}


def _current_names(config: dict) -> dict:
    """`config` with a checkpoint metric of an older name as runs log it now (val_macro_ap: val_macro_pr_auc)."""
    metric = config.get("checkpoint_metric")
    if isinstance(metric, str) and current_metric_name(metric) != metric:
        return {**config, "checkpoint_metric": current_metric_name(metric)}
    return config


def _number(x: float) -> str:
    """A range bound as written: whole numbers in full (2147483647, not 2.14748e+09)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _finite(value: float) -> bool:
    """math.isfinite that says False for an int too large for a float (a 400-digit seed) instead of raising."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check(key: str, value: Any, opt: Option) -> Any:
    if value is None:
        if opt.nullable:
            return None
        raise OLRError(f"The config value {key}=null is not allowed; give a value (default {opt.default!r}).")
    if opt.type == "bool":
        if isinstance(value, str):
            value = parse_value(value)
        if not isinstance(value, bool):
            raise OLRError(
                f"The config value {key}={short_repr(value)} is not true or false; write {key}=true or {key}=false."
            )
        return value
    if opt.type in ("int", "float"):
        if isinstance(value, str):
            value = parse_value(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise OLRError(
                f"The config value {key}={short_repr(value)} is not a number; "
                f"give e.g. {key}={opt.default if opt.default is not None else 1}."
            )
        if opt.type == "int":
            if float(value) != int(value):
                raise OLRError(
                    f"The config value {key}={short_repr(value)} is not a whole number; give e.g. {key}={int(value)}."
                )
            value = int(value)
        else:
            value = float(value)
        low_ok = opt.min is None or (value > opt.min if opt.min_exclusive else value >= opt.min)
        high_ok = opt.max is None or value <= opt.max
        if not (low_ok and high_ok):
            lo = "" if opt.min is None else f"{'greater than' if opt.min_exclusive else 'at least'} {_number(opt.min)}"
            hi = "" if opt.max is None else f"at most {_number(opt.max)}"
            raise OLRError(
                f"The config value {key}={short_repr(value)} is out of range; "
                f"use a number {' and '.join(x for x in (lo, hi) if x)}."
            )
        return value
    if opt.type == "auto_bool":
        if isinstance(value, str) and value.strip().lower() != "auto":
            value = parse_value(value)
        if value == "auto" or isinstance(value, bool):
            return value
        raise OLRError(f"The config value {key}={short_repr(value)} is not auto, true or false; write e.g. {key}=auto.")
    if opt.type == "scheme":
        if isinstance(value, (str, dict)) and value:
            return value
        raise OLRError(
            f"The config value {key}={short_repr(value)} is not a scheme name, JSON file or mapping; "
            f"use e.g. {key}=level2."
        )
    if not isinstance(value, str):
        raise OLRError(
            f"The config value {key}={short_repr(value)} is not text; give e.g. {key}={opt.default or 'NAME'}."
        )
    if opt.choices and value not in opt.choices:
        close = difflib.get_close_matches(value, [str(c) for c in opt.choices], n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise OLRError(
            f"The config value {key}={short_repr(value)} is not one of {', '.join(opt.choices)}{hint}; "
            "pick one of them."
        )
    return value
