"""Batched prediction and label embedding of dataset tiles, streamed from the memory map.

`model` may be a keras.Model, a `olr.runs.store.Run` or a run id (its best checkpoint is loaded);
`dataset` a `olr.data.dataset.Dataset` or a dataset name/folder. Tiles are read in `indices` order
through `olr.training.pipelines.tile_batches` (no shuffling, no augmentation).

Keras and TensorFlow are imported when a function runs, not with this module, so modules
that import it (evaluation, the app's loaders) stay light until they predict.
"""

from __future__ import annotations

import numpy as np

from olr.data.dataset import Dataset, load_dataset
from olr.runs import store


def _model(model):
    if hasattr(model, "predict"):
        return model
    from olr.training.models import load_model  # Keras: see the module docstring

    run = model if isinstance(model, store.Run) else store.load_run(model)
    return load_model(run.files.best)


def _dataset(dataset) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset)


def _predict(model, dataset, indices, batch_size: int) -> np.ndarray:
    from olr.training.inputs import batches_module  # TensorFlow or numpy: see the module docstring

    pipelines = batches_module()

    ds = _dataset(dataset)
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    batches = pipelines.tile_batches(ds.images, indices, batch_size=batch_size)
    return np.asarray(model.predict(batches, verbose=0), dtype=np.float32)


def predict_probabilities(model, dataset, indices, batch_size: int = 256) -> np.ndarray:
    """(n, L) float32 classifier probabilities for the tiles `indices` of `dataset`."""
    return _predict(_model(model), dataset, indices, batch_size)


def embedder_of(siamese_model):
    """The "embedder" sub-model (tile -> (B, L, k)) of a Siamese pair model (or the embedder itself)."""
    if siamese_model.name == "embedder":
        return siamese_model
    return siamese_model.get_layer("embedder")


def label_embeddings(siamese_model, dataset, indices, batch_size: int = 256) -> np.ndarray:
    """(n, L, k) float32 per-label embeddings e_i(x) of the tiles `indices` (un-occluded)."""
    return _predict(embedder_of(_model(siamese_model)), dataset, indices, batch_size)
