"""OLR Studio library: datasets, models, training runs, evaluation and label correlations.

Usable from a notebook, the command line (`python -m olr`) and the Streamlit app; it never
imports streamlit.
"""

__version__ = "0.1.0"
