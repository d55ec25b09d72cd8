"""The notebook widgets: the tuning panel, the sampling explorer and what they share.

``widgets.panel`` holds `Panel`, ``widgets.explorer`` holds `Explorer`, ``widgets.controls``
the slider and binding helpers both use, and ``widgets._textview`` the streamed text view.
Importing this package imports nothing; each submodule imports ipywidgets when it loads.
"""
