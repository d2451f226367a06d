"""One way to turn a matplotlib figure into PNG bytes (headless: the Agg backend)."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (executors and cron have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def png(fig: Any) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()
