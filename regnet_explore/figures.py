"""The matplotlib figure type every function of this package returns: a plain ``matplotlib.figure.Figure`` that also
shows as an image when a notebook displays it.

A bare ``Figure`` (made without pyplot, as library code should, so that nothing leaks into pyplot's global state)
has no image representation until something switches the inline backend on: ``display(fig)`` in a fresh kernel
gives only ``<Figure size 1100x400 with 2 Axes>``. This subclass renders itself to PNG (as ``savefig`` does), so it
shows in any kernel state, and where the inline backend is on, its formatter (found through the class's bases) draws
it the same way.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure as MatplotlibFigure


class Figure(MatplotlibFigure):
    """``matplotlib.figure.Figure`` with ``_repr_png_``: IPython's display shows it as a PNG image."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")  # as the inline backend draws: no clipped labels
        return buffer.getvalue()
