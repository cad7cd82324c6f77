"""Which input implementation this install trains and predicts with: the tf.data pipelines
(`olr.training.pipelines`) where TensorFlow is installed, on either Keras backend, else the numpy
PyDatasets (`olr.training.loaders`, a JAX-only install). Both have the same functions and batches."""

from __future__ import annotations

import importlib.util
from types import ModuleType


def batches_module() -> ModuleType:
    """`olr.training.pipelines` when TensorFlow can be imported, else `olr.training.loaders`."""
    if importlib.util.find_spec("tensorflow") is not None:
        from olr.training import pipelines

        return pipelines
    from olr.training import loaders

    return loaders
