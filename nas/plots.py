"""Plots of a campaign's candidates and Pareto front: quality against latency and quality
against memory side by side (the front is 3-D: a point that looks dominated in one panel
is on the front through the other), every budget drawn in its panel, front points
numbered by quality and keyed to their architecture beside the panels (labels at the points
overlap where points cluster), feasible candidates as filled circles and infeasible ones as
crosses; a legend entry only for what is drawn. HTML with plotly (the architecture also on
hover), PNG with matplotlib."""
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


def _split(points: list[Point], budgets: Budgets) -> tuple[list[Point], list[Point]]:
    ok = [p for p in points if not budgets.violations(p.latency_ms, p.memory_bytes)]
    return ok, [p for p in points if budgets.violations(p.latency_ms, p.memory_bytes)]


def _numbered(front: Front) -> list[tuple[int, Point]]:
    """Front points numbered 1, 2, ... from the best quality down: the key the plots print."""
    return list(enumerate(sorted(front.points, key=lambda p: -p.quality), start=1))


def _key(front: Front) -> str:
    return "\n".join(f"{i}  {p.arch}  (quality {p.quality:.4f})" for i, p in _numbered(front))


def _subtitle(front: Front) -> str:
    return f"hypervolume {front.hypervolume_normalised:.1%} of ideal-to-reference box"


PANELS = (("latency_ms", "latency per step (ms)", 1.0, "latency_ms_per_step"),
          ("memory_bytes", "peak memory (MiB)", MIB, "memory_bytes"))


def _plotly(points, front, budgets, out, title):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=[p[1] for p in PANELS], horizontal_spacing=0.08)
    feasible, infeasible = _split(points, budgets)
    for col, (attr, label, scale, budget_attr) in enumerate(PANELS, start=1):
        for group, name, symbol in ((feasible, "within budgets", "circle"), (infeasible, "over a budget", "x")):
            if not group:
                continue
            fig.add_trace(go.Scatter(
                x=[getattr(p, attr) / scale for p in group], y=[p.quality for p in group], mode="markers",
                name=name, legendgroup=name, showlegend=col == 1, text=[p.arch for p in group],
                hovertemplate="%{text}<br>quality %{y:.5f}<br>%{x:.3f}<extra></extra>",
                marker=dict(symbol=symbol, size=8, color="steelblue" if symbol == "circle" else "grey",
                            opacity=0.7)), row=1, col=col)
        number = {id(p): i for i, p in _numbered(front)}
        for group, name, symbol in zip(_split(front.points, budgets), ("Pareto front (quality, latency, memory)",
                                                                       "front point over a budget"),
                                       ("diamond", "diamond-open")):
            if not group:
                continue
            fig.add_trace(go.Scatter(
                x=[getattr(p, attr) / scale for p in group], y=[p.quality for p in group],
                mode="markers+text", name=name, legendgroup=name, showlegend=col == 1,
                text=[str(number[id(p)]) for p in group], customdata=[p.arch for p in group],
                hovertemplate="%{customdata}<br>quality %{y:.5f}<br>%{x:.3f}<extra></extra>",
                textposition="top center", textfont=dict(size=10),
                marker=dict(size=11, symbol=symbol, color="crimson")), row=1, col=col)
        limit = getattr(budgets, budget_attr)
        if limit is not None:
            fig.add_vline(x=limit / scale, line_dash="dash", row=1, col=col,
                          annotation_text=f"{'latency' if col == 1 else 'memory'} budget")
        fig.update_xaxes(title_text=label, row=1, col=col)
    fig.update_yaxes(title_text="quality (higher is better)", row=1, col=1)
    fig.add_annotation(text=_key(front).replace("\n", "<br>"), xref="paper", yref="paper", x=0, y=-0.3,
                       showarrow=False, align="left", xanchor="left", yanchor="top", font=dict(size=11))
    fig.update_layout(title=f"{title}: {_subtitle(front)}", legend=dict(orientation="h", y=-0.18),
                      height=600 + 18 * len(front.points), width=1300, margin=dict(b=140 + 18 * len(front.points)))
    fig.write_html(out, include_plotlyjs=True)


def _matplotlib(points, front, budgets, out, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(front.points)
    fig, axes = plt.subplots(1, 2, figsize=(14, 6 + 0.2 * rows), dpi=110, sharey=True)
    feasible, infeasible = _split(points, budgets)
    front_ok, front_over = _split(front.points, budgets)
    for ax, (attr, label, scale, budget_attr) in zip(axes, PANELS):
        for group, style in ((feasible, dict(marker="o", color="steelblue", alpha=0.6, label="within budgets")),
                             (infeasible, dict(marker="x", color="grey", alpha=0.8, label="over a budget")),
                             (front_ok, dict(marker="D", color="crimson", zorder=3,
                                             label="Pareto front (quality, latency, memory)")),
                             (front_over, dict(marker="D", facecolors="none", edgecolors="crimson", zorder=3,
                                               label="front point over a budget"))):
            if group:
                ax.scatter([getattr(p, attr) / scale for p in group], [p.quality for p in group], **style)
        for i, p in _numbered(front):
            ax.annotate(str(i), (getattr(p, attr) / scale, p.quality), fontsize=8, color="crimson",
                        xytext=(5, 3), textcoords="offset points")
        limit = getattr(budgets, budget_attr)
        if limit is not None:
            ax.axvline(limit / scale, linestyle="--", color="black",
                       label=f"{'latency' if attr == 'latency_ms' else 'memory'} budget")
        ax.set_xlabel(label)
        ax.margins(x=0.15, y=0.08)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("quality (higher is better)")
    fig.suptitle(f"{title}: {_subtitle(front)}")
    key_in = 0.2 * rows + 0.5  # inches below the panels for the key of the numbered front points
    fig.tight_layout(rect=(0, key_in / fig.get_figheight(), 1, 1))
    fig.text(0.01, (key_in - 0.15) / fig.get_figheight(), "front, by quality:\n" + _key(front), fontsize=8,
             va="top", family="monospace")
    fig.savefig(out)
    plt.close(fig)
