"""Data: from a satellite image and a land-cover map to a multi-label tile dataset.

Owns the CORINE legend and the label schemes (`label_schemes`), reading rasters and vectors
(`rasters`), preparation into tiles (`prepare`; its size known beforehand: `prepare_estimate`),
spatial splits (`splits`), the dataset folder format (`dataset`), the thesis batch import
(`thesis_import`), the BigEarthNet-S2 import (`bigearthnet`), the synthetic demo scene
(`demo_scene`) and label statistics (`label_stats`).

May import: the core (`olr.errors`, `olr.workspace`, `olr.atomic`) only. Nothing here loads
TensorFlow.
"""
