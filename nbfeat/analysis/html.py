"""Rich notebook display for result objects: an HTML table and the figure as an inline PNG.

>>> res._repr_html_()          # what Jupyter calls to show `res`     # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from typing import Any

# a table larger than this shows its corner only; the full values are on the object
MAX_ROWS = 40
MAX_COLS = 20


def figure_png(fig: Any, dpi: int = 90) -> str:
    """A matplotlib Figure as base64 PNG text."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def result_html(title: str, frame: Any, plot: Callable[[], Any] | None = None, note: str = "") -> str:
    """`<div>` with a title, the (corner of the) DataFrame `frame` and `plot()` as an inline image."""
    shown = frame.iloc[:MAX_ROWS, :MAX_COLS]
    cut = "" if shown.shape == frame.shape else f"<p style='font-size:smaller'>showing {shown.shape[0]} x {shown.shape[1]} of {frame.shape[0]} x {frame.shape[1]}</p>"
    table = shown.to_html(float_format=lambda v: f"{v:.3f}", border=0, classes="nbfeat-result-table")
    img = ""
    if plot is not None:
        try:
            img = f"<img class='nbfeat-result-figure' src='data:image/png;base64,{figure_png(plot())}'/>"
        except Exception as exc:  # a figure that cannot draw must not hide the numbers
            img = f"<p>(no figure: {html.escape(str(exc))})</p>"
    extra = f"<p style='font-size:smaller'>{html.escape(note)}</p>" if note else ""
    return (
        "<div class='nbfeat-result'>"
        f"<strong>{html.escape(title)}</strong>{extra}"
        "<div style='display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap'>"
        f"<div style='overflow:auto;max-height:32em'>{table}{cut}</div>{img}</div></div>"
    )
