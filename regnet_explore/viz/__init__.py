"""Figures, scene views and notebook widgets on top of the package.

Submodules are imported explicitly (``from regnet_explore.viz.design_space import ...``) so that a plot never
pulls in an optional stack: ``design_space`` needs only the core dependencies (plotly, pandas);
``arch_explorer`` needs the ``notebooks`` extra (ipywidgets, and anywidget for plotly's ``FigureWidget``).
"""
