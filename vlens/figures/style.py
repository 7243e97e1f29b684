"""What every figure shares: the colours and labels of the knockouts, the matplotlib style,
formatting of values and configuration names, error bars, reference lines, saving in every format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker

matplotlib.use("Agg")

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType


TYPE_COLORS = {"lv": "#D55E00", "vt": "#0072B2", "vs": "#009E73", "all": "#555555"}


TYPE_LABELS = {"lv": "LV-K", "vt": "VT-K", "vs": "VS-K", "all": "LV+VT+VS"}


CLEAN_COLOR, CHANCE_COLOR, PRIOR_COLOR = "#000000", "#888888", "#CC79A7"


FORMATS = ("png", "pdf", "svg")


# typed with matplotlib's own key names, so a misspelt rc key is a type error
STYLE: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}


def fmt_value(v: float | None, pct: bool = False) -> str:
    """A table cell: `–` for a missing or NaN value, a percentage or 3 decimals otherwise.

    Args:
        v: the value.
        pct: format as a percentage with one decimal.

    Returns:
        The cell text.
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def config_label(name: str, layers: Sequence[int] | None) -> str:
    """A configuration's readable name: windows carry their layer range (`windows/lv/4–7`).

    Args:
        name: the stored configuration name (`windows/lv/7` names a window by its last layer).
        layers: the configuration's layers.

    Returns:
        The label; names other than windows are returned as they are.
    """
    if name.startswith("windows/") and layers:
        kind = name.split("/")[1]
        return f"windows/{kind}/{layers[0]}–{layers[-1]}" if len(layers) > 1 else f"windows/{kind}/{layers[0]}"
    return name


def layer_span(layers: Sequence[int] | None) -> str:
    return "" if not layers else (f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else str(layers[0]))


# figure helpers ---------------------------------------------------------------------------------
def save_figure(fig, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"figure path {path} ends in .{fmt}; use one of {', '.join('.' + f for f in FORMATS)}")
    fig.savefig(path, format=fmt, metadata={"Software": None} if fmt == "png" else None)
    plt.close(fig)
    return path


def ci_bounds(rows: Sequence[dict]) -> tuple[list[float], list[float]]:
    return [r["ratio_ci"][0] for r in rows], [r["ratio_ci"][1] for r in rows]


def yerr(rows: Sequence[dict]) -> list[list[float]]:
    lo = [
        0.0 if math.isnan(r["ratio"]) or math.isnan(r["ratio_ci"][0]) else max(0.0, r["ratio"] - r["ratio_ci"][0])
        for r in rows
    ]
    hi = [
        0.0 if math.isnan(r["ratio"]) or math.isnan(r["ratio_ci"][1]) else max(0.0, r["ratio_ci"][1] - r["ratio"])
        for r in rows
    ]
    return [lo, hi]


def reference_lines(ax, chance: float | None, clean: float | None) -> None:
    """Clean (ratio 1) and chance (the uniform guess's accuracy over clean accuracy)."""
    ax.axhline(1.0, color=CLEAN_COLOR, lw=0.8, ls=":", label="clean" + (f" ({clean:.0%})" if clean is not None else ""))
    if chance is not None and clean:
        ax.axhline(chance / clean, color=CHANCE_COLOR, lw=1.0, ls="--", label=f"chance ({chance:.0%} accuracy)")


def integer_layer_axis(ax, ticks: Sequence[int], labels: Sequence[str] | None = None) -> None:
    step = max(1, math.ceil(len(ticks) / 14))  # at most ~14 labels; every layer still has a point
    shown = list(ticks)[::step]
    ax.set_xticks(shown, None if labels is None else list(labels)[::step])
    ax.xaxis.set_minor_locator(matplotlib.ticker.FixedLocator(list(ticks)))
