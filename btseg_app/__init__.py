"""Streamlit helpers shared by app.py and pages/: cached loaders, error boxes, sidebar badges.

The btseg library never imports Streamlit; everything that does lives here or in the pages.
"""
