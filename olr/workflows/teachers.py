"""Classifier runs not trained here: a researcher's own Keras model, and ensembles of classifier runs.

The Siamese network imitates its classifier, so the classifier is the ceiling of the method;
these two ways in let a stronger teacher than the two trained families stand in its place.

- `register_model`: a `.keras` file (or a Keras-3-readable `.h5`) becomes a finished classifier
  run of a dataset. Nothing is guessed: the model's outputs are named (by label name or CLC code,
  an output list and an optional mapping file for names that differ), the band order is the
  dataset's unless given (and then said), and how the model expects its input (the dataset's
  raw values, standardised by the dataset's band statistics, or multiplied by a factor) must be
  given unless the model normalises its input itself (a leading `Normalization` layer, whose
  statistics are then checked against the dataset's). Input shape, band count, output count and
  the outputs on real tiles (finite, between 0 and 1: probabilities, not logits unless said) are
  checked, each mismatch one sentence with what to change.
- `ensemble_runs`: finished classifier runs of one dataset averaged into one run (the labels all
  members predict, in the first member's order).

Both write `best.keras` as one Keras model from raw tiles (B, h, w, b) to the run's labels'
probabilities (B, L): the user's model behind a band selection and input scaling, with its
outputs put in the run's label order (`olr.training.models.SelectChannels`); or the members and a
`keras.layers.Average`. Evaluation, correlations, predictions, exports and Siamese training then
treat the run like any classifier run. The run folder is built in a hidden staging folder and
renamed into place when complete (nothing half-written); `config.json["teacher"]` records where
the model came from. A Siamese run against such a teacher gets the default trunk family (its
architecture is not one of ours, so nothing is copied from it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from olr import atomic, workspace
from olr.analysis import run_data
from olr.data.dataset import Dataset, load_dataset
from olr.data.label_schemes import Label, read_json_file, short_repr, whole_number
from olr.data.prepare import file_digest
from olr.data.rasters.images import band_position, require_distinct
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout, RunState
from olr.training import options, plan
from olr.training.options import ENSEMBLE, REGISTERED

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
#: How a registered model expects its input: the dataset's values as they are, or standardised by
#: the dataset's band mean and std; a number multiplies them (e.g. 0.0001 for reflectance in 0-1).
INPUT_SCALINGS = ("raw", "standardize")
#: Tiles whose outputs are checked at registration (finite, probabilities): enough to meet logits.
CHECK_TILES = 64
#: A model's Normalization statistics and the dataset's (after the input scaling) disagree, i.e. the
#: model was trained on values on another scale (reflectance 0-1 against 0-10000), when a band's
#: dataset mean lies this many of the model's standard deviations from the model's mean ...
MAX_MEAN_SHIFT_SD = 5.0
#: ... or when a band's spread differs by more than this factor (an order of magnitude: another unit).
MAX_STD_RATIO = 10.0


# ------------------------------------------------------------------ what the user says


def parse_input_scaling(text: str | float | None) -> str | float | None:
    """ "raw", "standardize", or a positive factor; OLRError for anything else."""
    if text is None or isinstance(text, float):
        return text
    word = str(text).strip().lower()
    if word in INPUT_SCALINGS:
        return word
    try:
        factor = float(word)
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise OLRError(
            f"--input-scaling {short_repr(text)} is not raw, standardize or a positive factor; give e.g. "
            "--input-scaling raw (the model takes the dataset's values), standardize, or 0.0001."
        )
    return factor


def read_output_names(path: str | Path) -> list:
    """The model's outputs in order from a JSON list, or a text file with one name or code per line
    (an empty line or "-" for an output to leave out)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        names = read_json_file(p, "outputs file", 'a JSON list such as ["Water bodies", 211, null]')
        if not isinstance(names, list):
            raise OLRError(f'The outputs file {p} must hold a JSON list such as ["Water bodies", 211, null].')
        return names
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise OLRError(
            f"The outputs file {p} could not be read as UTF-8 text ({e}); give a JSON list or a text file."
        ) from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    return [None if n in ("", "-") else n for n in names]


def read_mapping(path: str | Path | None) -> dict:
    """{model's name for an output: dataset label name, CLC code or null (leave the output out)}."""
    if path is None:
        return {}
    mapping = read_json_file(Path(path), "mapping file", '{"Water": "Water bodies", "Clouds": null}')
    if not isinstance(mapping, dict):
        raise OLRError(f'The mapping file {path} must hold a JSON object such as {{"Water": "Water bodies"}}.')
    return mapping


@dataclass(frozen=True)
class OutputMap:
    """Which model output gives which of the run's labels."""

    labels: list[Label]  # the run's labels: the dataset's labels the model predicts, in the dataset's order
    outputs: list[int]  # per run label, the model output giving it
    unpredicted: list[str]  # dataset labels no output gives
    left_out: list[str]  # model outputs mapped to no label (named null)


def map_outputs(names: list, mapping: dict, ds: Dataset) -> OutputMap:
    """Match the model's output names (after `mapping`) to `ds`'s labels by name (case-insensitive) or
    CLC code; OLRError for an output that matches nothing or a label given by two outputs."""
    labels = ds.labels
    by_name = {lab.name.casefold(): i for i, lab in enumerate(labels)}
    by_code = {}
    for i, lab in enumerate(labels):
        for code in lab.codes:
            by_code.setdefault(code, i)
    label_of_output: dict[int, int] = {}
    left_out = []
    for k, name in enumerate(names):
        key = mapping.get(str(name), name) if name is not None else None
        if key is None:
            left_out.append(str(name) if name is not None else f"output {k + 1}")
            continue
        code = whole_number(key)
        found = by_code.get(code) if code is not None else by_name.get(str(key).strip().casefold())
        if found is None:
            raise OLRError(
                f"The model's output {k + 1} ({short_repr(name)}) is no label of the dataset {ds.name} "
                f"({', '.join(ds.label_names)}); name it as the dataset does, by CLC code, or map it in a mapping "
                f'file ({{"{name}": "<label>"}}, or null to leave it out).'
            )
        if found in label_of_output.values():
            other = next(j for j, i in label_of_output.items() if i == found)
            raise OLRError(
                f"The model's outputs {other + 1} and {k + 1} both give the label {ds.label_names[found]!r}; "
                "map one of them to another label or to null."
            )
        label_of_output[k] = found
    if not label_of_output:
        raise OLRError(f"None of the model's outputs gives a label of the dataset {ds.name}; name its outputs.")
    order = sorted(label_of_output.items(), key=lambda item: item[1])
    return OutputMap(
        labels=[labels[i] for _, i in order],
        outputs=[k for k, _ in order],
        unpredicted=[lab.name for i, lab in enumerate(labels) if i not in label_of_output.values()],
        left_out=left_out,
    )


def band_indices(ds: Dataset, bands: list[str] | None) -> list[int]:
    """0-based dataset bands in the order the model takes them (all, in the dataset's order, when not given)."""
    if not bands:
        return list(range(ds.tile_shape[2]))
    names = ds.band_names or [f"band {i + 1}" for i in range(ds.tile_shape[2])]
    positions = [band_position(token, names, f"of dataset {ds.name}", "--bands") for token in bands]
    require_distinct(positions, names, "--bands")
    return positions


# ------------------------------------------------------------------ checks on the model


def load_user_model(path: str | Path):
    """The Keras model in `path`; one sentence when Keras 3 cannot read it."""
    import keras

    p = Path(path)
    if p.is_dir():
        raise OLRError(
            f"{p} is a folder (a TensorFlow SavedModel?), which Keras 3 cannot load as a model; save the model as a "
            ".keras file (model.save('model.keras') in Keras 3, or with tf.keras 2.13+) and register that."
        )
    if not p.is_file():
        raise OLRError(f"The model file {p} does not exist; give the path of a .keras or .h5 file.")
    if p.suffix.lower() not in MODEL_SUFFIXES:
        raise OLRError(f"The model file {p} is not a .keras or .h5 file; save the model as .keras and register that.")
    try:
        return keras.models.load_model(p, compile=False)
    except Exception as e:  # a foreign, corrupt or custom-object file: Keras's own words say which
        raise OLRError(
            f"The model file {p} could not be loaded by Keras 3 ({type(e).__name__}: {str(e)[:300]}); save it as "
            ".keras with Keras 3 (custom layers registered with keras.saving.register_keras_serializable)."
        ) from None


def check_input_shape(model, ds: Dataset, n_bands: int, path) -> None:
    """OLRError unless the model takes one input of the dataset's tile size with `n_bands` bands."""
    if len(model.inputs) != 1:
        raise OLRError(f"The model {Path(path).name} takes {len(model.inputs)} inputs; register a model of one input.")
    shape = tuple(model.inputs[0].shape)
    h, w, b = ds.tile_shape
    if len(shape) != 4:
        raise OLRError(
            f"The model {Path(path).name} takes inputs of shape {shape[1:]}, not image tiles (height, width, bands)."
        )
    fits = all(want is None or int(want) == have for want, have in zip(shape[1:3], (h, w), strict=True))
    if not fits or (shape[3] is not None and int(shape[3]) != n_bands):
        raise OLRError(
            f"The model {Path(path).name} takes tiles of {shape[1]} x {shape[2]} pixels with {shape[3]} bands, but "
            f"the dataset {ds.name} gives {h} x {w} pixels with {n_bands} bands"
            + ("" if n_bands == b else f" (of its {b}, chosen with --bands)")
            + "; prepare the dataset with the model's tile size, or choose its bands with --bands."
        )
    outputs = tuple(model.outputs[0].shape) if len(model.outputs) == 1 else ()
    if len(outputs) != 2:
        raise OLRError(
            f"The model {Path(path).name} does not give one vector of label scores per tile (its output shapes "
            f"are {[tuple(o.shape) for o in model.outputs]}); register a multi-label classifier with one (B, L) output."
        )


def leading_normalization(model):
    """The model's first layer after its input when that is a `Normalization` layer, else None."""
    import keras

    first = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)][:1]
    return first[0] if first and isinstance(first[0], keras.layers.Normalization) else None


def check_normalization(norm, ds: Dataset, bands: list[int], scaling, path) -> None:
    """OLRError when the model's own input normalisation was fitted to values on another scale than the
    dataset's bands (after `scaling`) give it."""
    mean = np.ravel(np.asarray(norm.mean, dtype=np.float64))
    std = np.sqrt(np.ravel(np.asarray(norm.variance, dtype=np.float64)))
    factor = scaling if isinstance(scaling, float) else 1.0
    stats = [ds.meta["bands"][i] for i in bands]
    if len(mean) not in (1, len(stats)):
        return  # normalisation over another axis: nothing comparable per band
    mean = np.broadcast_to(mean, (len(stats),))
    std = np.maximum(np.broadcast_to(std, (len(stats),)), 1e-12)
    for k, band in enumerate(stats):
        have_mean, have_std = float(band["mean"]) * factor, float(band["std"]) * factor
        shifted = abs(have_mean - mean[k]) > MAX_MEAN_SHIFT_SD * std[k]
        if shifted or not (1 / MAX_STD_RATIO <= have_std / std[k] <= MAX_STD_RATIO):
            raise OLRError(
                f"The model {Path(path).name} normalises its band {k + 1} by mean {mean[k]:.4g} and std "
                f"{std[k]:.3g}, but band {band.get('name', k + 1)} of the dataset {ds.name} has mean {have_mean:.4g} "
                f"and std {have_std:.3g} as given: the model was trained on values on another scale; give "
                "--input-scaling with the factor that converts them (e.g. 0.0001), or --bands in the model's order."
            )


# ------------------------------------------------------------------ building best.keras


def wrapped_model(user_model, ds: Dataset, bands: list[int], scaling, outputs: list[int], logits: bool):
    """Raw dataset tiles (B, h, w, b) -> the run's labels' probabilities (B, L) through `user_model`."""
    import keras

    from olr.training.models import SelectChannels, normalization

    tiles = keras.Input(shape=ds.tile_shape, dtype="float32", name="tile")
    x = tiles
    if bands != list(range(ds.tile_shape[2])):
        x = SelectChannels(bands, name="model_bands")(x)
    if scaling == "standardize":
        x = normalization([ds.meta["bands"][i] for i in bands])(x)
    elif isinstance(scaling, float) and scaling != 1.0:
        x = keras.layers.Rescaling(scaling, name="input_scaling")(x)
    scores = user_model(x)
    if logits:
        scores = keras.layers.Activation("sigmoid", name="sigmoid")(scores)
    probabilities = SelectChannels(outputs, name="probabilities")(scores)
    return keras.Model(tiles, probabilities, name="registered_classifier")


def check_probabilities(model, ds: Dataset, path, logits: bool) -> None:
    """OLRError unless the model gives finite probabilities in [0, 1] on the first validation (or training) tiles."""
    rows = ds.split_indices("val")
    rows = (rows if len(rows) else ds.split_indices("train"))[:CHECK_TILES]
    if not len(rows):
        return
    p = np.asarray(model.predict(np.asarray(ds.images[rows], dtype=np.float32), verbose=0))
    if not np.isfinite(p).all():
        raise OLRError(
            f"The model {Path(path).name} gives NaN or infinite outputs on tiles of the dataset {ds.name}; check "
            "--input-scaling and --bands (the model may expect values on another scale)."
        )
    if not logits and (p.min() < 0.0 or p.max() > 1.0):
        raise OLRError(
            f"The model {Path(path).name} gives outputs from {p.min():.3g} to {p.max():.3g} on tiles of the dataset "
            f"{ds.name}, not probabilities between 0 and 1; if they are logits (no sigmoid at the end), pass --logits."
        )


def _run_config(ds: Dataset, labels: list[Label], model: str, teacher: dict, unpredicted: list[str]) -> dict:
    """config.json of a classifier run not trained here: the derived keys a trained run has, and where it came from."""
    train_idx, val_idx = ds.split_indices("train"), ds.split_indices("val")
    cfg = {
        "kind": "classifier",
        "model": model,
        **plan.derived_keys(ds, train_idx, val_idx),
        "labels": [lab.to_json() for lab in labels],
        "pruned_labels": unpredicted,
        "threshold": options.OPTIONS["threshold"].default,
        "teacher": teacher,
    }
    if len(val_idx):
        cfg.update(plan.validation_facts(labels, ds.presence_for(labels)[val_idx].astype(np.float64)))
    return cfg


def write_run(cfg: dict, model, run_id: str | None) -> Path:
    """A finished classifier run `models/<run_id or a fresh id>/` holding `cfg` and `model` as best.keras,
    built in a hidden staging folder and renamed into place complete."""
    if run_id:
        store.check_new_run_id(run_id)
        final = workspace.run_path(run_id)
    else:
        final = workspace.models_dir() / store.new_run_id(f"classifier-{cfg['model']}")
    with atomic.staged_folder(final) as tmp:
        layout = RunLayout(tmp)
        model.save(layout.best)
        atomic.write_json(layout.config, {**cfg, "run_id": final.name})
        now = time.time()
        store.write_status(tmp, {"state": RunState.FINISHED.value, "started": now, "ended": now})
    return final


# ------------------------------------------------------------------ the two ways in


def register_model(
    model_path: str | Path,
    dataset: str,
    *,
    outputs: str | Path | None = None,
    mapping: str | Path | None = None,
    bands: list[str] | None = None,
    input_scaling=None,
    logits: bool = False,
    run_id: str | None = None,
    log=print,
) -> Path:
    """Register the Keras model in `model_path` as a finished classifier run of `dataset`; returns the run folder."""
    path = Path(model_path)
    ds = load_dataset(dataset)
    plan.check_finite_pixels(ds)
    if run_id:
        store.check_new_run_id(run_id)
    scaling = parse_input_scaling(input_scaling)
    band_idx = band_indices(ds, bands)
    user_model = load_user_model(path)
    check_input_shape(user_model, ds, len(band_idx), path)
    names = _output_names(path, outputs, user_model)
    mapped = map_outputs(names, read_mapping(mapping), ds)
    norm = leading_normalization(user_model)
    if scaling is None:
        if norm is None:
            raise OLRError(
                f"The model {path.name} does not normalise its input itself, so say what it expects: "
                "--input-scaling raw (the dataset's values as they are), standardize (by the dataset's band mean "
                "and std) or a factor such as 0.0001."
            )
        scaling = "raw"
    if norm is not None and scaling != "standardize":
        check_normalization(norm, ds, band_idx, scaling, path)
    model = wrapped_model(user_model, ds, band_idx, scaling, mapped.outputs, logits)
    check_probabilities(model, ds, path, logits)
    chosen = [ds.band_names[i] if ds.band_names else f"band {i + 1}" for i in band_idx]
    teacher = {
        "source": REGISTERED,
        "file": path.name,
        "sha256": file_digest(path)["sha256"],
        "outputs": list(names),
        "bands": chosen,
        "bands_given": bool(bands),
        "input_scaling": scaling,
        "logits": bool(logits),
        "outputs_left_out": mapped.left_out,
    }
    log(
        f"model {path.name}: takes bands {', '.join(chosen)}"
        + ("" if bands else " (the dataset's order; --bands to change)")
    )
    log(f"input scaling: {scaling}; outputs: {len(names)}, giving {len(mapped.labels)} of the dataset's labels")
    if mapped.unpredicted:
        log(f"labels of {ds.name} the model does not predict (left out of the run): {', '.join(mapped.unpredicted)}")
    if mapped.left_out:
        log(f"outputs left out: {', '.join(mapped.left_out)}")
    return write_run(_run_config(ds, mapped.labels, REGISTERED, teacher, mapped.unpredicted), model, run_id)


def _output_names(path: Path, outputs, user_model) -> list:
    """The model's output names from --outputs, or from the config.json beside a run's checkpoint."""
    n = int(user_model.outputs[0].shape[-1])
    if outputs is not None:
        names = read_output_names(outputs)
        source = f"the outputs file {outputs}"
    else:
        beside = path.parent / RunLayout.CONFIG
        stored = store.read_json(beside) if beside.is_file() else {}
        if not stored.get("labels"):
            raise OLRError(
                f"Nothing names the {n} outputs of the model {path.name}; give --outputs FILE listing their label "
                "names or CLC codes in output order (one per line, or a JSON list)."
            )
        names = [d.get("name") for d in stored["labels"]]
        source = f"the run config {beside}"
    if len(names) != n:
        raise OLRError(
            f"{source[:1].upper()}{source[1:]} names {len(names)} outputs, but the model {path.name} gives {n}; "
            "name every output in order (an empty line or null for one to leave out)."
        )
    return names


ENSEMBLE_WEIGHTS = ("selected", "equal")


def selected_weights(val_probabilities: list[np.ndarray], y_val: np.ndarray, max_rounds: int = 25) -> list[int]:
    """How often each member enters the ensemble, chosen on validation (ensemble selection with replacement,
    Caruana et al. 2004): start from the member of the best validation macro AP, then repeatedly add the member
    (again, if it helps) whose addition raises the mean's validation macro AP most; stop when none does.

    By construction the ensemble is at least as good as its best member on validation; the test split, never
    looked at here, says whether that carries over. Macro AP over the labels with validation positives.
    """
    from olr.analysis import metrics

    def macro_ap(p: np.ndarray) -> float:
        return metrics.mean_defined(metrics.average_precision(y_val, p))

    scores = [macro_ap(p) for p in val_probabilities]
    weights = [0] * len(val_probabilities)
    best = int(np.nanargmax(scores))
    weights[best], total, current = 1, val_probabilities[best].astype(np.float64), scores[best]
    for _ in range(max_rounds):
        n = sum(weights)
        trials = [macro_ap((total + p) / (n + 1)) for p in val_probabilities]
        pick = int(np.nanargmax(trials))
        if not trials[pick] > current:
            break
        weights[pick] += 1
        total, current = total + val_probabilities[pick], trials[pick]
    return weights


def ensemble_runs(run_ids: list[str], run_id: str | None = None, weights: str = "selected", log=print) -> Path:
    """Average the probabilities of finished classifier runs of one dataset into a new classifier run.

    weights: "selected" (`selected_weights`, chosen on the validation split) or "equal" (the plain mean).
    """
    import keras

    from olr.training.models import SelectChannels, load_model

    if weights not in ENSEMBLE_WEIGHTS:
        raise OLRError(f"Unknown ensemble weights {weights!r}; use one of {', '.join(ENSEMBLE_WEIGHTS)}.")
    if len(run_ids) < 2:
        raise OLRError("An ensemble needs at least two classifier runs; name two or more.")
    if len(set(run_ids)) != len(run_ids):
        raise OLRError("A run is named twice; name each member of the ensemble once.")
    members = [plan.finished_classifier(r) for r in run_ids]
    first = members[0]
    for m in members[1:]:
        if (m.config.get("dataset"), m.config.get("dataset_checksum")) != (
            first.config.get("dataset"),
            first.config.get("dataset_checksum"),
        ):
            raise OLRError(
                f"The runs {first.id} and {m.id} were trained on different datasets (or versions of one); an ensemble "
                "averages runs of the same dataset."
            )
    if run_id:
        store.check_new_run_id(run_id)
    ds = run_data.run_dataset(first)  # DatasetChanged when it was prepared again since the members trained
    names = [[d["name"] for d in m.config["labels"]] for m in members]
    common = [n for n in names[0] if all(n in other for other in names[1:])]
    if not common:
        raise OLRError("The runs share no label; an ensemble averages runs that predict the same labels.")
    dropped = sorted({n for member in names for n in member} - set(common))
    labels = [Label.from_json(d) for d in first.config["labels"] if d["name"] in common]
    tiles = keras.Input(shape=ds.tile_shape, dtype="float32", name="tile")
    heads = []
    for i, member in enumerate(members):
        model = load_model(member.files.best)
        # one tensor in, one out (a list would reach the next layer as a list), under a name unique in the ensemble
        model = keras.Model(model.inputs[0], model.outputs[0], name=f"member_{i + 1}")
        heads.append(SelectChannels([names[i].index(n) for n in common], name=f"member_{i + 1}_labels")(model(tiles)))
    counts = [1] * len(members)
    val = ds.split_indices("val")
    if weights == "selected":
        if not len(val):
            raise OLRError(
                f"The dataset {ds.name} has no validation tiles to choose the members' weights on; use --weights equal."
            )
        per_member = keras.Model(tiles, heads).predict(np.asarray(ds.images[val], dtype=np.float32), verbose=0)
        counts = selected_weights([np.asarray(p) for p in per_member], ds.presence_for(labels)[val])
    # a member chosen w times enters the mean w times: a weighted average of built-in layers only
    chosen = [head for head, w in zip(heads, counts, strict=True) for _ in range(w)]
    probabilities = (
        keras.layers.Average(name="probabilities")(chosen)
        if len(chosen) > 1
        else keras.layers.Identity(name="probabilities")(chosen[0])
    )
    ensemble = keras.Model(tiles, probabilities, name="ensemble_classifier")
    log(
        f"ensemble of {len(members)} runs over {len(common)} labels, weights "
        + ", ".join(f"{m.id} {w}" for m, w in zip(members, counts, strict=True))
        + (" (chosen on validation)" if weights == "selected" else "")
    )
    if dropped:
        log(f"labels not predicted by every member (left out): {', '.join(dropped)}")
    teacher = {
        "source": ENSEMBLE,
        "members": [m.id for m in members],
        "weights": counts,
        "combination": "weighted mean of probabilities, weights chosen on validation"
        if weights == "selected"
        else "mean of probabilities",
    }
    return write_run(_run_config(ds, labels, ENSEMBLE, teacher, dropped), ensemble, run_id)
