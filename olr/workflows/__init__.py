"""Workflows: the commands that chain the stages — a training run with its evaluation
(`train`), the one-command demo (`demo`), preset sweeps (`sweep`) and benchmarks (`bench`).

May import every other package; nothing imports a workflow (the command line reaches them
through `olr.cli`'s registry).
"""
