"""The devices a run trains on, per Keras backend, and the distribution over them.

- TensorFlow (the default backend): CUDA_VISIBLE_DEVICES chooses GPUs; with more than one visible,
  tf.distribute.MirroredStrategy (one host). `logical_cpus=N` splits the CPU into N logical devices
  and mirrors over them (to exercise that path without GPUs).
- JAX (KERAS_BACKEND=jax): `keras.distribution.DataParallel` over every device of every process
  (the model replicated, each batch split between the devices); several processes (hosts) meet in
  `keras.distribution.initialize`, configured by Keras's environment variables
  (`olr.training.processes`); on CPUs their collectives go through Gloo. `logical_cpus=N` splits the
  CPU into N XLA host devices.

`setup(logical_cpus)` runs once per process before the backend computes anything and gives a `Devices`:
its `scope()` holds the model building and fitting, `replicas` counts the devices a batch is split
between (all processes together), `any_process(flag)` agrees on a flag (a stop request) across processes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from olr.errors import OLRError
from olr.training.processes import ProcessRole, check_backend, role_from_env


@dataclass(frozen=True)
class Devices:
    """Where a run trains (see the module docstring); `description` is for the status and console."""

    backend: str  # Keras's, as it resolved KERAS_BACKEND (or keras.json)
    description: str
    replicas: int
    scope: Callable[[], contextlib.AbstractContextManager]
    role: ProcessRole = field(default_factory=ProcessRole)

    @property
    def on_gpu(self) -> bool:
        return self.description.startswith("GPU")

    def share(self, ds):
        """This process's share of every batch of the input `ds` (`process_share` of `inputs.batches_module()`)."""
        from olr.training.inputs import batches_module

        return batches_module().process_share(ds, self.role.process_id, self.role.process_count)

    def any_process(self, flag: bool) -> bool:
        """`flag` of any process (every process must call this at the same point); `flag` for one process."""
        if not self.role.distributed:
            return flag
        import numpy as np
        from jax.experimental import multihost_utils

        return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).any())


def setup(logical_cpus: int = 0) -> Devices:
    """The `Devices` of this process (see the module docstring). Must run before the backend computes anything."""
    import keras

    backend = keras.backend.backend()
    role = role_from_env()
    check_backend(role, backend)
    if backend == "jax":
        return _jax_devices(logical_cpus, role)
    if backend != "tensorflow":
        raise OLRError(
            f"Keras's {backend} backend is not supported for training; set KERAS_BACKEND to tensorflow or jax."
        )
    return _tensorflow_devices(logical_cpus)


def _tensorflow_devices(logical_cpus: int) -> Devices:
    if logical_cpus > 1 and "tensorflow" not in sys.modules:
        # oneDNN's CPU kernels crash the process (SIGSEGV) under MirroredStrategy over logical
        # CPUs on AVX-512 machines (TensorFlow 2.21); TensorFlow reads this switch at import.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        strategy, description = _gpu_strategy(tf, gpus)
    elif logical_cpus > 1:
        strategy, description = _logical_cpu_strategy(tf, logical_cpus)
    else:
        strategy, description = tf.distribute.get_strategy(), "CPU"
    return Devices("tensorflow", description, strategy.num_replicas_in_sync, strategy.scope)


def _gpu_strategy(tf, gpus):
    names = []
    for i, gpu in enumerate(gpus):
        try:
            detail = tf.config.experimental.get_device_details(gpu).get("device_name", "")
        except (RuntimeError, ValueError):
            detail = ""
        names.append(f"GPU:{i}" + (f" ({detail})" if detail else ""))
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"{', '.join(names)} (MirroredStrategy)"
    return tf.distribute.get_strategy(), names[0]


def _fresh_process_error() -> OLRError:
    return OLRError(
        "The CPU can only be split into logical devices before the backend starts; run the training in a fresh process."
    )


def _logical_cpu_strategy(tf, logical_cpus: int):
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    except RuntimeError:
        raise _fresh_process_error() from None
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices), f"CPU x{len(devices)} (logical devices, MirroredStrategy)"


_jax_devices_cache: Devices | None = None


def _jax_devices(logical_cpus: int, role: ProcessRole) -> Devices:
    global _jax_devices_cache
    if _jax_devices_cache is not None:  # the processes meet once per process
        return _jax_devices_cache
    if logical_cpus > 1:
        # read when JAX starts its CPU backend, at its first computation or device query
        os.environ["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={logical_cpus}".strip()
        )
    import jax
    import keras

    if role.distributed:
        # collectives between processes on CPUs (harmless on GPUs, which use NCCL)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize()  # reads the KERAS_DISTRIBUTION_* variables; returns once all have met
    local = jax.local_devices()
    if logical_cpus > 1 and local[0].platform == "cpu" and len(local) != logical_cpus:
        raise _fresh_process_error()
    everywhere = jax.devices()
    kind = local[0].platform.upper()
    description = f"{kind} x{len(local)}" if len(local) > 1 else f"{kind}"
    if role.distributed:
        description += f" in each of {role.process_count} processes"
    if len(everywhere) > 1:
        # each process takes its share of every batch itself (`olr.training.pipelines.process_share`): Keras's
        # own sharding needs a batch size it can read from the tf.data graph, which the pipelines' reads hide
        distribution = keras.distribution.DataParallel(
            devices=keras.distribution.list_devices(), auto_shard_dataset=False
        )
        description += " (JAX, keras.distribution DataParallel)"
        scope = distribution.scope
    else:
        scope = contextlib.nullcontext
    _jax_devices_cache = Devices("jax", description, len(everywhere), scope, role)
    return _jax_devices_cache
