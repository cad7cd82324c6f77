"""Runs: the run folder `models/<run-id>/` and the processes behind it.

Owns the run folder's layout, states and liveness (`store`), starting, resuming and stopping
training processes (`launcher`) and one-run-per-device locks (`device_queue`).

May import: the core only. It sits beside training (training writes through it), never above:
the launcher starts training as a subprocess (`python -m olr train`), not by import.
"""
