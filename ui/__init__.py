"""Streamlit building blocks shared by the pages (the `olr` library never imports streamlit)."""
