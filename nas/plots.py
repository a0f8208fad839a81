"""Plots of a campaign's candidates and Pareto front: quality against latency, memory as
colour, the front marked (it is 3-D: a point may look dominated in this projection), the
latency budget drawn. HTML with plotly, PNG with matplotlib."""
from __future__ import annotations

from pathlib import Path

from core.budgets import MIB, Budgets
from core.errors import HwnasError
from nas.pareto import Front, Point


class PlotError(HwnasError):
    """A plot that cannot be made as asked (e.g. an unknown file type)."""


def plot_front(points: list[Point], front: Front, budgets: Budgets, out: str | Path, title: str) -> Path:
    out = Path(out)
    if out.suffix == ".html":
        _plotly(points, front, budgets, out, title)
    elif out.suffix == ".png":
        _matplotlib(points, front, budgets, out, title)
    else:
        raise PlotError(f"--out {out}: the plot must end in .html (plotly) or .png (matplotlib)")
    return out


def _plotly(points, front, budgets, out, title):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p.latency_ms for p in points], y=[p.quality for p in points], mode="markers", name="evaluated",
        text=[p.arch for p in points],
        marker=dict(color=[p.memory_bytes / MIB for p in points], colorscale="Viridis", showscale=True,
                    colorbar=dict(title="memory (MiB)"), size=8, opacity=0.6)))
    fig.add_trace(go.Scatter(
        x=[p.latency_ms for p in front.points], y=[p.quality for p in front.points], mode="markers",
        name="Pareto front (quality, latency, memory)", text=[p.arch for p in front.points],
        marker=dict(size=11, symbol="diamond", color="crimson")))
    if budgets.latency_ms_per_step is not None:
        fig.add_vline(x=budgets.latency_ms_per_step, line_dash="dash", annotation_text="latency budget")
    fig.update_layout(title=f"{title}: hypervolume {front.hypervolume:.4g}", xaxis_title="latency per step (ms)",
                      yaxis_title="quality (higher is better)")
    fig.write_html(out, include_plotlyjs=True)


def _matplotlib(points, front, budgets, out, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    sc = ax.scatter([p.latency_ms for p in points], [p.quality for p in points],
                    c=[p.memory_bytes / MIB for p in points], cmap="viridis", alpha=0.6, label="evaluated")
    fig.colorbar(sc, ax=ax, label="memory (MiB)")
    ax.scatter([p.latency_ms for p in front.points], [p.quality for p in front.points], marker="D", color="crimson",
               label="Pareto front (quality, latency, memory)", zorder=3)
    if budgets.latency_ms_per_step is not None:
        ax.axvline(budgets.latency_ms_per_step, linestyle="--", color="grey", label="latency budget")
    ax.set_xlabel("latency per step (ms)")
    ax.set_ylabel("quality (higher is better)")
    ax.set_title(f"{title}: hypervolume {front.hypervolume:.4g}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
