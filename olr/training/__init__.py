"""Training: the option schema, the Keras models and losses, input pipelines, the fit loops and
the lifecycle of a training process (status, heartbeat, stop, resume).

May import: `olr.data`, `olr.runs` (the run folder it writes) and the core. Never the analysis
or the workflows: evaluation after training is the caller's explicit step
(`olr.workflows.train`). The ML core (`models`, `losses`, `pipelines`, `loaders`) imports nothing
of `olr` but the error type (`pipelines` its shared constants from `loaders`).
"""
