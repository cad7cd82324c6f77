"""Train: a form for every training option, device choice, launch, and the active runs."""

from __future__ import annotations

import json

import streamlit as st

from olr import workspace
from olr.data import label_schemes
from olr.training import options
from olr.data.dataset import list_datasets
from olr.runs import launcher
from olr.runs import store
from olr.errors import OLRError
from ui import runs_panel, state
from ui.entry import ensure_entrypoint
from ui.guard import guarded

ensure_entrypoint()
st.title("Train")
st.caption(
    "Every run is the command line `python -m olr train …` started in the background, so it behaves the same as "
    "from a shell, keeps running when the browser closes, and writes its config, status, metrics, log and "
    "checkpoints into `models/<run-id>/`."
)

# Which form section each option goes to; options not listed land in "Other" (the form follows the schema).
SECTIONS = {
    "Data and labels": ["dataset", "classifier_run", "scheme", "min_fraction", "prune_below", "on_missing_label",
                        "max_train_tiles", "max_val_tiles"],
    "Architecture": ["model", "trunk", "width", "depth", "dropout", "embedding_dim"],
    "Loss and decision": ["loss", "focal_gamma", "focal_alpha", "pos_weight_max", "threshold"],
    "Batches and augmentation": ["batch_size", "shuffle", "augment"],
    "Occlusion (Siamese)": ["occlusion_min", "occlusion_max", "occlusion_fill", "pairs_per_epoch", "val_pairs"],
    "Optimisation": ["epochs", "learning_rate", "optimizer", "early_stopping_patience", "checkpoint_metric",
                     "log_every_steps", "seed"],
}
LABELS = {
    "classifier_run": "Classifier run", "min_fraction": "Min. area fraction (blank: dataset's)",
    "prune_below": "Prune labels in fewer training tiles than", "on_missing_label": "Label absent from training split",
    "max_train_tiles": "Max. training tiles (0: all)", "max_val_tiles": "Max. validation tiles (0: all)",
    "embedding_dim": "Embedding size k per label", "focal_alpha": "Focal alpha (blank: none)",
    "focal_gamma": "Focal gamma", "pos_weight_max": "Max. positive weight", "batch_size": "Batch size",
    "shuffle": "Randomized batches", "augment": "Flips and 90° rotations", "occlusion_min": "Occlusion min. side",
    "occlusion_max": "Occlusion max. side", "occlusion_fill": "Occluded pixels", "pairs_per_epoch": "Pairs per epoch (0: one per tile)",
    "val_pairs": "Validation pairs", "learning_rate": "Learning rate", "early_stopping_patience": "Early-stopping patience (0: off)",
    "checkpoint_metric": "Best checkpoint by", "log_every_steps": "Log every n steps", "trunk": "Trunk (blank: classifier's)",
}
SCHEME_DEFAULT = "(dataset's labels)"


def _label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " ").capitalize())


def option_widget(key: str, opt: options.Option, kind: str, defaults: dict, datasets: list[str], classifiers: list[str]):
    """The widget for one config option; returns its value (None = the option's default rule)."""
    wkey = f"train.{kind}.{key}"
    default = defaults.get(key, opt.default)
    help_ = opt.help
    if key == "dataset":
        options = datasets if kind == "classifier" else [None, *datasets]
        pick = state.dataset() if state.dataset() in datasets else (options[0] if options else None)
        return st.selectbox("Dataset", options, index=options.index(pick) if pick in options else 0, key=wkey, help=help_,
                            format_func=lambda d: "(the classifier's dataset)" if d is None else d)
    if key == "classifier_run":
        return st.selectbox("Classifier run", classifiers, key=wkey, help=help_,
                            placeholder="no finished classifier run yet", index=0 if classifiers else None)
    if key == "scheme":
        options = [SCHEME_DEFAULT, *label_schemes.SCHEME_NAMES, "custom"]
        choice = st.selectbox("Label scheme", options, key=wkey, help=help_,
                              format_func=lambda s: label_schemes.SCHEME_TITLES.get(s, "Custom mapping (JSON below)" if s == "custom" else s))
        if choice == "custom":  # parsed at launch, so a half-typed mapping never breaks the form
            return st.text_area("Custom mapping (JSON)", key=wkey + ".json", placeholder='{"Urban": [111, 112], "Forest": [311, 312, 313]}') or "{}"
        return None if choice == SCHEME_DEFAULT else choice
    if opt.type == "bool":
        return st.toggle(_label(key), value=bool(default), key=wkey, help=help_)
    if opt.choices:
        options = ([None] if opt.nullable else []) + list(opt.choices)
        return st.selectbox(_label(key), options, index=options.index(default) if default in options else 0, key=wkey, help=help_,
                            format_func=lambda c: "(default)" if c is None else str(c))
    if opt.type in ("int", "float"):
        is_int = opt.type == "int"
        lo = None if opt.min is None else (opt.min if is_int or not opt.min_exclusive else opt.min + 1e-6)
        hi = opt.max
        cast = int if is_int else float
        kwargs = dict(min_value=cast(lo) if lo is not None else None, max_value=cast(hi) if hi is not None else None,
                      value=cast(default) if default is not None else None, key=wkey, help=help_)
        if is_int:
            kwargs["step"] = 1
        else:
            kwargs["format"] = "%g"
            kwargs["step"] = _float_step(key, default)
        return st.number_input(_label(key), **kwargs)
    value = st.text_input(_label(key), value="" if default is None else str(default), key=wkey, help=help_)
    return value or None


def _float_step(key: str, default) -> float:
    if key == "learning_rate":
        return 1e-4
    if key in ("width",):
        return 0.25
    return 0.01 if default is None or abs(float(default)) <= 1 else 1.0


def training_form(datasets: list[str], classifiers: list[str]) -> None:
    kind = st.segmented_control("What to train", list(options.KINDS), default="classifier", required=True, key="train.kind",
                                format_func={"classifier": "Multi-label classifier", "siamese": "Siamese network (OLR)"}.get)
    kind = kind or "classifier"
    if kind == "classifier":
        st.caption("A multi-label CNN with one sigmoid output per label, trained on the dataset's tiles.")
    else:
        st.caption("The Siamese network learns one k-dim embedding per label; its target for a pair of occluded tiles is "
                   "the product of the frozen classifier's probabilities. It needs a finished classifier run.")
        if not classifiers:
            st.warning("There is no finished classifier run yet: train a classifier first.", icon=":material/warning:")
    kind_options = options.options_for(kind)
    defaults = options.defaults(kind)
    placed = {k for keys in SECTIONS.values() for k in keys}
    sections = dict(SECTIONS)
    other = [k for k in kind_options if k not in placed and k != "kind"]
    if other:
        sections["Other"] = other
    devices = _devices()
    values: dict = {}
    with st.form(f"train.form.{kind}", border=True):
        for title, keys in sections.items():
            keys = [k for k in keys if k in kind_options]
            if not keys:
                continue
            st.markdown(f"**{title}**")
            cols = st.columns(3)
            for n, key in enumerate(keys):
                with cols[n % 3]:
                    values[key] = option_widget(key, kind_options[key], kind, defaults, datasets, classifiers)
        st.markdown("**Where to run**")
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        device = c1.selectbox("Device", [d.id for d in devices], format_func={d.id: d.label for d in devices}.get,
                              key=f"train.{kind}.device", help="GPUs found with nvidia-smi; the run sees only the chosen ones (CUDA_VISIBLE_DEVICES).")
        queue = c2.toggle("One run per device (queue)", value=False, key=f"train.{kind}.queue",
                          help="The run waits as 'queued' until no other run trains on this device, then starts.")
        submitted = c3.form_submit_button("Launch training", type="primary", icon=":material/play_arrow:",
                                          disabled=workspace.is_readonly() or (kind == "siamese" and not classifiers))
    if submitted:
        launch(kind, values, device, queue)


@st.cache_data(ttl=60, show_spinner=False)
def _device_list() -> list[tuple[str, str]]:
    return [(d.id, d.label) for d in launcher.list_devices()]


def _devices() -> list[launcher.Device]:
    return [launcher.Device(i, label) for i, label in _device_list()]


@guarded("Launching the run")
def launch(kind: str, values: dict, device: str, queue: bool = False) -> None:
    workspace.require_writable("start a training run")
    raw = {"kind": kind, **{k: v for k, v in values.items() if v is not None}}
    if isinstance(raw.get("scheme"), str) and raw["scheme"].lstrip().startswith("{"):
        try:
            raw["scheme"] = json.loads(raw["scheme"])
        except json.JSONDecodeError as e:
            raise OLRError(f"The custom label mapping is not valid JSON ({e.msg}); write it like {{\"Urban\": [111, 112]}}.") from None
    if kind == "siamese" and not raw.get("classifier_run"):
        raise OLRError("Pick the finished classifier run the Siamese network should imitate.")
    cfg = options.resolve(raw)  # bad options are reported here, before any process starts
    # One key per submission: a rerun or double click while launching returns the same run.
    key = st.session_state.setdefault("train.launch_key", launcher.new_key())
    run_id = launcher.launch_training({k: cfg[k] for k in raw} | {"kind": kind}, device, key=key, wait_for_device=queue)
    st.session_state["train.launch_key"] = launcher.new_key()
    state.choose_runs([run_id, *[r for r in state.runs() if r != run_id]][:4])
    if launcher.launched_by(run_id, key):
        state.flash("success", f"Launched **{run_id}** ({kind}, {device}{', queued for the device' if queue else ''}). "
                               "Follow its curves on the Live page.")
    else:
        state.flash("info", f"The same configuration is already running on {device} as **{run_id}**; it is shown instead of "
                            "starting a duplicate. Change a setting (e.g. the seed) to train another.")
    st.rerun()


datasets = list_datasets()
all_runs = store.list_runs()
classifiers = [r.id for r in all_runs if r.kind == "classifier" and r.state == "finished"]

if not datasets:
    st.info("There is no dataset to train on yet. Prepare or import one on the Datasets page first.", icon=":material/info:")
    st.page_link("pages/datasets.py", label="Go to Datasets", icon=":material/dataset:")
elif workspace.is_readonly():
    st.info("This is a read-only demo: training cannot be launched here.", icon=":material/lock:")
else:
    training_form(datasets, classifiers)

st.subheader("Active runs")
runs_panel.active_runs()
st.subheader("Recent runs")
runs_panel.recent_runs()
if not all_runs:
    st.caption("No runs yet.")
