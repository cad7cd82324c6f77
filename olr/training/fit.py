"""Keras fitting of a planned run: devices, optimizer, metrics and the two trainers
(`train_classifier`, `train_siamese`); the run's files are written by
`olr.training.run_callback.RunCallback`.

- metrics.jsonl: a "train" line every `log_every_steps` steps (running means over the epoch
  so far, `"scope": "step"`), and at each epoch end a "train" and a "val" line
  (`"scope": "epoch"`); metric names without the `val_` prefix; `epoch` is 1-based. A
  classifier's metrics are `olr.training.keras_metrics`'; its validation runs through a model
  sharing the trained layers, compiled with the validation metrics (macro averages over the
  labels with validation positives); the checkpoints carry only Keras's built-in metrics.
- best.keras / last.keras (for a Siamese run: the pair model, with its "embedder"):
  saved to a temporary name in the run folder, then renamed. train_state.json holds the
  completed epochs, step count, best score and early-stopping counter for `--resume`.
- Devices: `olr.training.devices` (MirroredStrategy on TensorFlow, keras.distribution on JAX); the
  models are built and fitted inside its scope, and batch sizes are multiples of its replicas.

TensorFlow and Keras (and the modules that import them) are imported inside the functions,
so planning a run and `python -m olr train --help` stay light. The `status` and `stop`
arguments are `olr.training.lifecycle`'s StatusFile and StopFlag.
"""

from __future__ import annotations

import contextlib
import os

from olr.errors import OLRError
from olr.runs.progress import Phase
from olr.runs.store import RunLayout, RunState
from olr.training.console import log
from olr.training.plan import Plan

#: CPU flags of native bfloat16 arithmetic (Intel AMX from Sapphire Rapids, AVX512-BF16 from Cooper Lake / Zen 4)
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def native_bfloat16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively and TensorFlow's oneDNN kernels are on to use it
    (without them bfloat16 runs no faster than float32). Linux only: other systems say False; so does
    Keras on another backend than TensorFlow (KERAS_BACKEND=jax: XLA's CPU kernels, not measured here)."""
    import keras

    # the backend as Keras resolved it (KERAS_BACKEND or keras.json), as the run's status records it
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") == "0" or keras.backend.backend() != "tensorflow":
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def compute_policy(precision: str, on_gpu: bool) -> str:
    """The Keras dtype policy a run computes with: `precision` as configured, "auto" decided here.

    auto: mixed bfloat16 on a CPU with native bfloat16 (about 1.5-2.5x faster training steps on the
    networks here, `python -m olr bench siamese`), float32 on other CPUs and on GPUs (there mixed
    precision is the user's choice: mixed_float16 on most, mixed_bfloat16 on recent ones).
    """
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if not on_gpu and native_bfloat16_cpu() else "float32"


@contextlib.contextmanager
def dtype_policy(policy: str):
    """Within: Keras's global dtype policy is `policy`, for the models built inside; afterwards it is what
    it was (a run trained in a notebook or a test leaves the process as it found it). Models loaded from
    checkpoints compute as they were saved (each layer stores its policy)."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(before)


def compute_policy_scope(cfg: dict, on_gpu: bool):
    """`dtype_policy` of the policy the run computes with (`compute_policy`); yields its name."""
    return dtype_policy(compute_policy(cfg["precision"], on_gpu=on_gpu))


def make_optimizer(cfg: dict, total_steps: int):
    """The configured optimizer; with lr_schedule=cosine the rate decays over `total_steps`."""
    import keras

    lr = cfg["learning_rate"]
    if cfg["lr_schedule"] == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps), alpha=0.05)
    name = cfg["optimizer"]
    if name == "adam":
        return keras.optimizers.Adam(lr)
    if name == "adamw":
        return keras.optimizers.AdamW(lr)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    return keras.optimizers.SGD(lr, momentum=0.9)


def _per_replica_multiple(n: int, replicas: int) -> int:
    """`n` rounded down to a multiple of the replica count (at least one per replica).

    Under MirroredStrategy every batch, the last one too, must split evenly between the
    replicas (Keras 3 fails on uneven splits), so batch sizes and the number of validation
    tiles/pairs are multiples of the replica count; at most replicas-1 validation tiles drop.
    """
    return max(replicas, n - n % replicas)


def _outcome(stop) -> RunState:
    return RunState.STOPPED if stop.requested else RunState.FINISHED


def _classifier_model(plan: Plan, batch: int):
    """A new compiled classifier, or (resuming) last.keras with its optimizer state. Call inside the devices' scope."""
    import keras

    from olr.training import keras_metrics, losses, models  # Keras: see the module docstring

    cfg, ds = plan.cfg, plan.dataset
    if plan.resuming:
        return keras.models.load_model(RunLayout(plan.run_dir).last)  # compiled, with optimizer state
    n_labels = len(cfg["labels"])
    model = models.classifier(cfg, ds.tile_shape, n_labels, ds.meta["bands"])
    pos_weight = (
        losses.pos_weights(plan.y_train, cfg["pos_weight_max"]) if cfg["loss"] == "weighted_bce_global" else None
    )
    total_steps = cfg["epochs"] * _classifier_epoch_steps(cfg, len(plan.train_idx), batch)
    model.compile(
        optimizer=make_optimizer(cfg, total_steps),
        loss=losses.make_loss(cfg, pos_weight),
        metrics=keras_metrics.classifier_metrics(n_labels, cfg["threshold"]),
        jit_compile=cfg["jit_compile"],
    )
    return model


def _classifier_epoch_steps(cfg: dict, n_train: int, batch: int) -> int:
    """Steps per classifier epoch: one pass over the training tiles, or what the recipe
    (`olr.training.recipe`) decided (`config["epoch_steps"]`, absent in older runs)."""
    return cfg.get("epoch_steps") or max(1, n_train // batch)


def _validation_model(plan: Plan, model, y_val):
    """A model sharing `model`'s layers (and so its weights), compiled with its loss and the metrics of the
    validation targets `y_val` (macro averages over their labels with positives). Call inside the devices' scope."""
    import keras

    from olr.training import keras_metrics  # Keras: see the module docstring

    val_model = keras.Model(model.inputs, model.outputs, name=f"{model.name}_validation")
    val_model.compile(
        loss=model.loss,
        metrics=keras_metrics.classifier_metrics(y_val.shape[1], plan.cfg["threshold"], presence=y_val),
        jit_compile=plan.cfg["jit_compile"],
    )
    return val_model


def train_classifier(plan: Plan, devices, status, stop) -> RunState:
    """Fit a classifier run; returns FINISHED, or STOPPED when a stop was requested."""
    import keras

    from olr.training.inputs import batches_module  # TensorFlow or numpy, and Keras: see the module docstring
    from olr.training.run_callback import RunCallback

    pipelines = batches_module()

    cfg, ds = plan.cfg, plan.dataset
    initial_epoch = (plan.train_state or {}).get("epoch", 0)
    keras.utils.set_random_seed(cfg["seed"] + initial_epoch)
    replicas = devices.replicas
    batch = _per_replica_multiple(min(cfg["batch_size"], len(plan.train_idx)), replicas)
    n_val = len(plan.val_idx) - len(plan.val_idx) % replicas
    if batch != min(cfg["batch_size"], len(plan.train_idx)):
        log(f"batch size {batch}: a multiple of the {replicas} replicas")
    status.phase(Phase.BUILDING)
    with devices.scope():
        model = _classifier_model(plan, batch)
        val_model = _validation_model(plan, model, plan.y_val[:n_val])
    log(
        f"model {model.name}: {model.count_params():,} parameters; loss {cfg['loss']}; "
        f"batches {'shuffled' if cfg['shuffle'] else 'in order'}"
    )
    epoch_steps = _classifier_epoch_steps(cfg, len(plan.train_idx), batch)
    # An epoch that is not one pass (cut for a large split, stretched for a small one): the tiles
    # repeat, each pass in a fresh order.
    repeating = epoch_steps != max(1, len(plan.train_idx) // batch)
    status.phase(Phase.LOADING)
    train_data = pipelines.tile_batches(
        ds.images,
        plan.train_idx,
        plan.y_train,
        batch_size=batch,
        shuffle=cfg["shuffle"],
        augment=cfg["augment"],
        shift=cfg["augment_shift"],
        jitter_bands=ds.meta["bands"] if cfg["augment_jitter"] else None,
        seed=cfg["seed"],
        drop_remainder=True,
        repeat=repeating,
    )
    val_data = pipelines.tile_batches(
        ds.images, plan.val_idx[:n_val], plan.y_val[:n_val], batch_size=_per_replica_multiple(max(batch, 256), replicas)
    )
    train_data, val_data = devices.share(train_data), devices.share(val_data)
    callback = RunCallback(
        plan,
        model,
        lambda: val_model.evaluate(val_data, verbose=0, return_dict=True),
        status,
        stop,
        epoch_steps=epoch_steps,
        batch_size=batch,
        val_samples=n_val,
        any_process=devices.any_process,
    )
    status.phase(Phase.COMPILING)  # the first step traces (and maybe XLA-compiles) the model
    with devices.scope():
        model.fit(
            train_data,
            epochs=cfg["epochs"],
            steps_per_epoch=epoch_steps if repeating else None,
            initial_epoch=initial_epoch,
            callbacks=[callback],
            verbose=0,
            shuffle=False,
        )
    _log_weights_digest(model, devices)
    return _outcome(stop)


def _teacher(plan: Plan):
    """The Siamese run's classifier (its best checkpoint), checked against its config."""
    import keras

    n_labels = len(plan.cfg["labels"])
    classifier = keras.models.load_model(plan.classifier_run.files.best, compile=False)
    if tuple(classifier.input_shape[1:]) != tuple(plan.dataset.tile_shape) or classifier.output_shape[-1] != n_labels:
        raise OLRError(
            f"The classifier run {plan.classifier_run.id}'s model takes {classifier.input_shape[1:]} and gives "
            f"{classifier.output_shape[-1]} labels, which does not match its config; train the classifier again."
        )
    return classifier


def _siamese_model(plan: Plan, classifier, batch: int):
    """A new compiled pair model, or (resuming) last.keras with its optimizer state. Call inside the devices' scope."""
    import keras

    from olr.training import models  # Keras: see the module docstring

    cfg, ds = plan.cfg, plan.dataset
    if plan.resuming:
        return keras.models.load_model(RunLayout(plan.run_dir).last)  # compiled, with optimizer state
    embedder = models.siamese_embedder(
        ds.tile_shape,
        len(cfg["labels"]),
        cfg["embedding_dim"],
        ds.meta["bands"],
        cfg["trunk"],
        cfg["width"],
        cfg["depth"],
        cfg["backbone_weights"],
    )
    if cfg["init_from_classifier"]:
        copied = models.copy_trunk_weights(classifier, embedder)
        log(
            f"Siamese trunk initialised from the classifier: {copied} layers copied"
            if copied > 1
            else "Siamese trunk trained from scratch: its architecture differs from the classifier's"
        )
    siamese = models.siamese_pair_model(embedder)
    total_steps = cfg["epochs"] * max(1, (cfg["pairs_per_epoch"] or len(plan.train_idx)) // batch)
    siamese.compile(optimizer=make_optimizer(cfg, total_steps), loss="mse")  # so checkpoints carry the optimizer state
    return siamese


def uses_batch_statistics(cfg: dict, classifier, embedder) -> bool:
    """Whether the Siamese trunk's batch norms train on each batch's statistics (`SiameseTrainer`), by the
    option `trunk_statistics`: the classifier's statistics only mean something in a trunk that started as
    the classifier's, so any other trunk uses each batch's."""
    from olr.training import models  # Keras: see the module docstring

    kept = cfg["trunk_statistics"] == "classifier" and cfg["init_from_classifier"]
    return not (kept and models.shares_trunk(classifier, embedder))


def train_siamese(plan: Plan, devices, status, stop) -> RunState:
    """Fit a Siamese run against its classifier; returns FINISHED, or STOPPED when a stop was requested."""
    import keras

    from olr.training import models  # Keras: see the module docstring
    from olr.training.inputs import batches_module
    from olr.training.run_callback import RunCallback

    pipelines = batches_module()

    cfg, ds = plan.cfg, plan.dataset
    state = plan.train_state or {}
    initial_epoch = state.get("epoch", 0)
    keras.utils.set_random_seed(cfg["seed"] + initial_epoch)
    replicas = devices.replicas
    batch = _per_replica_multiple(cfg["batch_size"], replicas)
    val_pairs = max(replicas, cfg["val_pairs"] - cfg["val_pairs"] % replicas)
    if batch != cfg["batch_size"]:
        log(f"batch size {batch}: a multiple of the {replicas} replicas")
    status.phase(Phase.BUILDING)
    with devices.scope():
        classifier = _teacher(plan)
        siamese = _siamese_model(plan, classifier, batch)
        fill = [b["mean"] for b in ds.meta["bands"]] if cfg["occlusion_fill"] == "mean" else [0.0] * ds.tile_shape[2]
        batch_statistics = uses_batch_statistics(cfg, classifier, siamese.get_layer("embedder"))
        trainer = models.SiameseTrainer(siamese, classifier, fill, batch_statistics=batch_statistics)
        # Keras's "auto": XLA on a GPU without tf.distribute, off on the CPU, where the XLA-compiled
        # step ran slower than the plain graph (`python -m olr bench siamese` prints both)
        trainer.compile(optimizer=siamese.optimizer, loss="mse", jit_compile=cfg["jit_compile"])
    pairs = cfg["pairs_per_epoch"] or len(plan.train_idx)
    steps = max(1, pairs // batch)
    occlusion = (cfg["occlusion_min"], cfg["occlusion_max"])
    statistics = "each batch's" if batch_statistics else "the classifier's, kept"
    log(
        f"Siamese {cfg['trunk']} trunk, k={cfg['embedding_dim']}: {siamese.count_params():,} parameters; "
        f"{steps} steps of {batch} pairs per epoch; occlusion {occlusion[0]:g}-{occlusion[1]:g} of the tile side, "
        f"fill {cfg['occlusion_fill']}; trunk batch-norm statistics: {statistics}"
    )
    status.phase(Phase.LOADING)
    train_data = pipelines.pair_batches(
        ds.images,
        plan.train_idx,
        batch_size=batch,
        occlusion=occlusion,
        seed=cfg["seed"],
        start_step=state.get("step", 0),
        self_pair_share=cfg["self_pair_share"],
    )
    val_data = pipelines.fixed_pair_batches(
        ds.images,
        plan.val_idx,
        n_pairs=val_pairs,
        batch_size=_per_replica_multiple(max(batch, 64), replicas),
        occlusion=occlusion,
        seed=cfg["seed"] + 1,
        self_pair_share=cfg["self_pair_share"],
    )
    train_data, val_data = devices.share(train_data), devices.share(val_data)
    callback = RunCallback(
        plan,
        siamese,
        lambda: trainer.evaluate(val_data, verbose=0, return_dict=True),
        status,
        stop,
        epoch_steps=steps,
        batch_size=batch,
        val_samples=val_pairs,
        any_process=devices.any_process,
    )
    status.phase(Phase.COMPILING)  # the first step traces and XLA-compiles the fused step
    with devices.scope():
        trainer.fit(
            train_data,
            steps_per_epoch=steps,
            epochs=cfg["epochs"],
            initial_epoch=initial_epoch,
            callbacks=[callback],
            verbose=0,
            shuffle=False,
        )
    _log_weights_digest(siamese, devices)
    return _outcome(stop)


def _log_weights_digest(model, devices) -> None:
    """Several processes: each logs a digest of its trained weights, equal on all when they trained as one."""
    if devices.role.distributed:
        import hashlib

        import numpy as np

        digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights()))
        log(f"process {devices.role.process_id}: trained weights sha256 {digest.hexdigest()}")
