"""Analysis: what a trained run says about the data.

Owns the multi-label metrics (`metrics`), prediction and embedding of dataset tiles
(`inference`), evaluation on a split (`evaluation`), label correlation matrices and their
agreement (`correlations`), the intervals and p-values beside every figure (`intervals`) and the
export of label embeddings (`embeddings`).

May import: `olr.training` (models and labels of a run), `olr.runs`, `olr.data` and the core.
"""
