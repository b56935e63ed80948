"""The compare notebook's figure (``ftlab.labs.methods``): quality against trainable share,
and the training memory of each method, analytic parts and measured peak."""

from __future__ import annotations

from .methods import LABELS, PARTS


def compare_figure(numbers: dict[str, dict[str, float]]):
    """Left: task score after training against the share of parameters trained (log).
    Right: the analytic memory breakdown as stacked bars, the measured peak as a marker."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    arms = list(numbers)
    names = [LABELS.get(a, a) for a in arms]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], subplot_titles=(
        "Quality against trainable share", "Training memory: analytic parts and measured peak"))
    fig.add_trace(go.Scatter(
        x=[numbers[a]["share_%"] for a in arms],
        y=[100 * numbers[a]["task_final"] for a in arms], mode="markers+text", text=names,
        textposition="top center", marker={"size": 11}, name="task score after training"),
        row=1, col=1)
    fig.add_trace(go.Scatter(
        x=[numbers[a]["share_%"] for a in arms],
        y=[100 * numbers[a]["task_first"] for a in arms], mode="markers",
        marker={"size": 8, "symbol": "circle-open"}, name="task score before training"),
        row=1, col=1)
    colors = {"weights": "#4c78a8", "gradients": "#f58518", "optimizer_state": "#e45756",
              "activations": "#72b7b2"}
    for part in PARTS:
        fig.add_trace(go.Bar(x=names, y=[numbers[a][part] / 2**20 for a in arms],
                             name=part.replace("_", " ") + " (analytic)",
                             marker_color=colors[part]), row=1, col=2)
    measured = [numbers[a]["measured_bytes"] for a in arms]
    if all(v is not None for v in measured):
        fig.add_trace(go.Scatter(x=names, y=[v / 2**20 for v in measured], mode="markers",
                                 marker={"symbol": "diamond", "size": 12, "color": "black"},
                                 name="measured peak above the runtime (fresh process)"),
                      row=1, col=2)
    fig.update_layout(barmode="stack", height=460, width=1000, template="plotly_white",
                      legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(type="log", title_text="parameters trained (% of the model, log scale)",
                     row=1, col=1)
    fig.update_yaxes(title_text="task score on held-out rows (%)", range=[-5, 105], row=1,
                     col=1)
    fig.update_xaxes(title_text="method", row=1, col=2)
    fig.update_yaxes(title_text="memory (MB)", row=1, col=2)
    return fig
