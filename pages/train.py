"""Train: a form for every training option (laid out by the option schema), device and Keras backend choice, launch,
and active runs."""

from __future__ import annotations

import json

import streamlit as st

from olr import workspace
from olr.data import label_schemes, legends
from olr.data.dataset import list_datasets
from olr.errors import OLRError
from olr.runs import launcher, store
from olr.training import options, plan
from ui import annotate, loaders, runs_panel, state
from ui.entry import ensure_entrypoint
from ui.guard import guarded

ensure_entrypoint()
st.title("Train")
st.caption(
    "Every run is the command line `python -m olr train …` started in the background, so it behaves the same as "
    "from a shell, keeps running when the browser closes, and writes its config, status, metrics, log and "
    "checkpoints into `models/<run-id>/`."
)

SCHEME_DEFAULT = "(dataset's labels)"


def applicable_schemes(dataset: str | None) -> tuple[str, ...]:
    """The named schemes that apply to `dataset` (all CORINE schemes, or only "legend" for a legend without
    CLC codes), as the Datasets page offers them; all of them when no dataset is picked yet."""
    if not dataset:
        return label_schemes.SCHEME_NAMES
    try:
        return legends.scheme_names(loaders.dataset(dataset).legend)
    except OLRError:  # an unreadable dataset: its launch says what is wrong with it
        return label_schemes.SCHEME_NAMES


def option_widget(
    key: str, opt: options.Option, kind: str, defaults: dict, datasets: list[str], classifiers: list[str]
):
    """The widget of one option, labelled and ranged by the schema; returns its value (None = the default rule)."""
    wkey = f"train.{kind}.{key}"
    default = defaults.get(key, opt.default)
    label, help_ = opt.label, opt.help
    if key == "dataset":
        choices = datasets if kind == "classifier" else [None, *datasets]
        pick = next((d for d in (defaults.get("dataset"), state.dataset()) if d in datasets), None)
        pick = pick if pick is not None or not choices else choices[0]
        return st.selectbox(
            label,
            choices,
            index=choices.index(pick) if pick in choices else 0,
            key=wkey,
            help=help_,
            format_func=lambda d: "(the classifier's dataset)" if d is None else d,
        )
    if key == "classifier_run":
        return st.selectbox(
            label,
            classifiers,
            key=wkey,
            help=help_,
            placeholder="no finished classifier run yet",
            index=classifiers.index(default) if default in classifiers else (0 if classifiers else None),
        )
    if key == "scheme":
        # the dataset picker sits above the form, so its value here is the dataset picked now
        schemes = applicable_schemes(st.session_state.get(f"train.{kind}.dataset"))
        choices = [SCHEME_DEFAULT, *schemes, "custom"]
        custom = None if default is None or default in schemes else default  # a mapping or a file, as typed
        choice = st.selectbox(
            label,
            choices,
            index=choices.index("custom" if custom is not None else default or SCHEME_DEFAULT),
            key=wkey,
            help=help_,
            format_func=lambda s: label_schemes.SCHEME_TITLES.get(
                s, "Custom mapping (JSON below)" if s == "custom" else s
            ),
        )
        if choice == "custom":  # parsed at launch, so a half-typed mapping never breaks the form
            return (
                st.text_area(
                    "Custom mapping (JSON)",
                    value=custom if isinstance(custom, str) or custom is None else json.dumps(custom),
                    key=wkey + ".json",
                    placeholder='{"Urban": [111, 112], "Forest": [311, 312, 313]}'
                    if schemes == label_schemes.SCHEME_NAMES
                    else '{"Forest": ["Conifer", "Broadleaf"]}',  # a legend's class names or values
                )
                or "{}"
            )
        return None if choice == SCHEME_DEFAULT else choice
    if opt.type == "bool":
        return st.toggle(label, value=bool(default), key=wkey, help=help_)
    if opt.choices:
        choices = ([None] if opt.nullable else []) + list(opt.choices)
        return st.selectbox(
            label,
            choices,
            index=choices.index(default) if default in choices else 0,
            key=wkey,
            help=help_,
            format_func=lambda c: "(default)" if c is None else opt.title(c),
        )
    if opt.type in ("int", "float"):
        is_int = opt.type == "int"
        lo = None if opt.min is None else (opt.min if is_int or not opt.min_exclusive else opt.min + 1e-6)
        hi = opt.max
        cast = int if is_int else float
        kwargs = dict(
            min_value=cast(lo) if lo is not None else None,
            max_value=cast(hi) if hi is not None else None,
            value=cast(default) if default is not None else None,
            key=wkey,
            help=help_,
        )
        if is_int:
            kwargs["step"] = 1
        else:
            kwargs["format"] = "%g"
            kwargs["step"] = opt.step or (0.01 if default is None or abs(float(default)) <= 1 else 1.0)
        return st.number_input(label, **kwargs)
    value = st.text_input(label, value="" if default is None else str(default), key=wkey, help=help_)
    return value or None


def _option_columns(keys: list[str], kind: str, defaults: dict, datasets: list[str], classifiers: list[str]) -> dict:
    cols = st.columns(3)
    values = {}
    for n, key in enumerate(keys):
        with cols[n % 3]:
            values[key] = option_widget(key, options.OPTIONS[key], kind, defaults, datasets, classifiers)
    return values


def _in_form(keys: list[str]) -> list[str]:
    """The option keys drawn inside the form: all but the dataset, drawn above it."""
    return [k for k in keys if k != "dataset"]


def training_form(datasets: list[str], classifiers: list[str]) -> None:
    annotate.receive_prefilled_values()  # "New run from these settings"
    kind_option = options.OPTIONS["kind"]
    kind = st.segmented_control(
        kind_option.label,
        list(kind_option.choices),
        default=annotate.prefill_kind() or kind_option.default,
        required=True,
        key="train.kind",
        format_func=kind_option.title,
    )
    kind = kind or kind_option.default
    if kind == "classifier":
        st.caption("A multi-label CNN with one sigmoid output per label, trained on the dataset's tiles.")
    else:
        st.caption(
            "The Siamese network learns one k-dim embedding per label; its target for a pair of occluded tiles is "
            "the product of the frozen classifier's probabilities. It needs a finished classifier run."
        )
        if not classifiers:
            st.warning("There is no finished classifier run yet: train a classifier first.", icon=":material/warning:")
    defaults = options.defaults(kind) | annotate.prefilled(kind)  # "New run from these settings"
    annotate.prefill_note(kind)
    layout = options.page_layout(kind)
    devices = _devices()
    backends = launcher.available_backends()
    # Outside the form, so that picking a dataset updates the label schemes offered for it at once.
    with st.columns(3)[0]:
        values = {
            "dataset": option_widget("dataset", options.OPTIONS["dataset"], kind, defaults, datasets, classifiers)
        }
    recipe_caption(kind, values["dataset"])
    with st.form(f"train.form.{kind}", border=True):
        for title, shown, _ in layout:
            if _in_form(shown):
                st.markdown(f"**{title}**")
                values |= _option_columns(_in_form(shown), kind, defaults, datasets, classifiers)
        with st.expander("More options"):
            for title, _, advanced in layout:
                if _in_form(advanced):
                    st.markdown(f"**{title}**")
                    values |= _option_columns(_in_form(advanced), kind, defaults, datasets, classifiers)
        st.markdown("**Where to run**")
        picks_backend = len(backends) > 1  # with one installed, the run trains on it without asking
        c1, *cb, c2, c3 = st.columns([2, 1.5, 2, 1] if picks_backend else [2, 2, 1], vertical_alignment="bottom")
        device = c1.selectbox(
            "Device",
            [d.id for d in devices],
            format_func={d.id: d.label for d in devices}.get,
            key=f"train.{kind}.device",
            help="GPUs found with nvidia-smi; the run sees only the chosen ones (CUDA_VISIBLE_DEVICES).",
        )
        backend = (
            cb[0].selectbox(
                "Keras backend",
                backends,
                key=f"train.{kind}.backend",
                help=" ".join(launcher.BACKENDS[b] for b in backends) + " It sets the run's KERAS_BACKEND.",
            )
            if picks_backend
            else None
        )
        queue = c2.toggle(
            "One run per device (queue)",
            value=False,
            key=f"train.{kind}.queue",
            help="The run waits as 'queued' until no other run trains on this device, then starts.",
        )
        submitted = c3.form_submit_button(
            "Launch training",
            type="primary",
            icon=":material/play_arrow:",
            disabled=workspace.is_readonly() or (kind == "siamese" and not classifiers),
        )
    annotate.send_prefilled_values(kind)
    if submitted:
        launch(kind, values, device, queue, backend)


@guarded("Reading what the recipe decides")
def recipe_caption(kind: str, dataset: str | None) -> None:
    """What the blank options (epochs, batch size, ...) become for the picked dataset, before launching."""
    if not dataset:
        return
    decided = plan.recipe_preview({"kind": kind, "dataset": dataset})
    if decided["why"]:
        st.caption(
            f"Left blank, the recipe decides for **{dataset}**: "
            + "; ".join(
                f"{options.OPTIONS[k].label.split(' (')[0].lower()} {decided['decided'][k]} ({why})"
                for k, why in decided["why"].items()
            )
            + ". Each run's config records it."
        )


@st.cache_data(ttl=60, show_spinner=False)
def _device_list() -> list[tuple[str, str]]:
    return [(d.id, d.label) for d in launcher.list_devices()]


def _devices() -> list[launcher.Device]:
    return [launcher.Device(i, label) for i, label in _device_list()]


@guarded("Launching the run")
def launch(kind: str, values: dict, device: str, queue: bool = False, backend: str | None = None) -> None:
    workspace.require_writable("start a training run")
    raw = {"kind": kind, **{k: v for k, v in values.items() if v is not None}}
    if isinstance(raw.get("scheme"), str) and raw["scheme"].lstrip().startswith("{"):
        # strictly: json.loads would keep the last of two equal label names silently
        raw["scheme"] = label_schemes.parse_json_strictly(raw["scheme"], "The custom label mapping")
    if kind == "siamese" and not raw.get("classifier_run"):
        raise OLRError("Pick the finished classifier run the Siamese network should imitate.")
    cfg = options.resolve(raw)  # bad options are reported here, before any process starts
    # One key per submission: a rerun or double click while launching returns the same run.
    key = st.session_state.setdefault("train.launch_key", launcher.new_key())
    run_id = launcher.launch_training(
        {k: cfg[k] for k in raw} | {"kind": kind}, device, key=key, wait_for_device=queue, backend=backend
    )
    st.session_state["train.launch_key"] = launcher.new_key()
    st.session_state[runs_panel.LAUNCHED] = run_id  # followed under the form: starting, training, or why it failed
    state.choose_runs([run_id, *[r for r in state.runs() if r != run_id]][:4])
    if launcher.launched_by(run_id, key):
        state.flash(
            "success",
            f"Launched **{run_id}** ({kind}, {device}{f', {backend}' if backend else ''}"
            f"{', queued for the device' if queue else ''}). "
            "Its progress is below; follow its curves on the Live page.",
        )
    else:
        state.flash(
            "info",
            f"The same configuration is already running on {device} as **{run_id}**; it is shown instead of "
            "starting a duplicate. Change a setting (e.g. the seed) to train another.",
        )
    st.rerun()


datasets = list_datasets()
all_runs = store.list_runs()
classifiers = [r.id for r in all_runs if r.kind == "classifier" and r.state == store.RunState.FINISHED]

if not datasets:
    st.info(
        "There is no dataset to train on yet. Prepare or import one on the Datasets page first.", icon=":material/info:"
    )
    st.page_link("pages/datasets.py", label="Go to Datasets", icon=":material/dataset:")
elif workspace.is_readonly():
    st.info("This is a read-only demo: training cannot be launched here.", icon=":material/lock:")
else:
    training_form(datasets, classifiers)
    runs_panel.launched_run()

st.subheader("Active runs")
runs_panel.active_runs()
st.subheader("Recent runs")
runs_panel.recent_runs()
if not all_runs:
    st.caption("No runs yet.")
