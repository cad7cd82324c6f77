"""OLR Studio library: datasets, models, training runs, evaluation and label correlations.

Usable from a notebook, the command line (`python -m olr`) and the Streamlit app; it never
imports streamlit.
"""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up lines (CPU instruction notes, plugin registration) are noise to a researcher
# reading the console or a run's log; errors still show. Set before anything imports TensorFlow, here
# because every entry point (CLI, app, training subprocess) imports olr first. TF_CPP_MIN_LOG_LEVEL=0
# brings them back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
