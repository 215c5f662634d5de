"""Figures as PNG bytes: a model's learning curve (``bep-mcu plot``), a sweep's Pareto fronts
(``bep-mcu sweep --plot``) and the adaptation benchmark's accuracy against cost
(docs/adaptation.md, drawn by scripts/figures.py). The caller writes the bytes.

matplotlib is part of the ``sweep`` extra and imported only here, when a figure is
drawn. Figures are made with ``matplotlib.figure.Figure`` and the Agg renderer, never
pyplot, so no window, display or global figure state is involved.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from bep_mcu.errors import BEPError
from bep_mcu.model import Model

INSTALL_HINT = "pip install 'bep-mcu[sweep]'"
DPI = 110


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise BEPError(f"plots are drawn with matplotlib, which is not installed: {INSTALL_HINT}") from None
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def require_matplotlib() -> None:
    """A one-line error now, before any work, when matplotlib is missing."""
    _figure(1, 1)


def _png(fig, metadata: dict[str, str] | None = None) -> bytes:
    """The PNG of ``fig``, with ``metadata`` as text chunks and no software version (the bytes
    depend on what is drawn, not on who drew it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None, **(metadata or {})})
    return buf.getvalue()


def learning_curve(model: Model, title: str) -> bytes:
    """Training and validation accuracy and γ per epoch, from the model's training history."""
    history = model.training.history
    if not history:
        raise BEPError(f"{title} has no training history (it was never trained)")
    epochs = [rec["epoch"] for rec in history]
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    ax.plot(epochs, [1.0 - rec["train_error"] for rec in history], label="training accuracy (during the epoch)",
            color="tab:blue")
    if any(rec.get("val_accuracy") is not None for rec in history):
        val = [(e, rec["val_accuracy"]) for e, rec in zip(epochs, history) if rec.get("val_accuracy") is not None]
        ax.plot(*zip(*val), label="validation accuracy", color="tab:orange")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    gamma_ax = ax.twinx()
    for layer in range(model.spec.n_layers):
        gamma_ax.step(epochs, [rec["gamma"][layer] for rec in history], where="post", linestyle="--",
                      color="tab:gray", alpha=0.5 + 0.5 * layer / max(1, model.spec.n_layers - 1),
                      label=f"γ, layer {layer + 1}")
    gamma_ax.set_ylabel("γ (winner-takes-update group)")
    gamma_ax.set_yscale("log", base=2)
    lines = ax.get_legend_handles_labels()
    more = gamma_ax.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize="small")
    spec = model.spec
    ax.set_title(f"{title}: {spec.model} {spec.n_inputs}-{'-'.join(map(str, spec.hidden))}-{spec.n_classes}, "
                 f"{model.training.epochs} epochs", fontsize="medium")
    return _png(fig)


def _label(summary: dict) -> str:
    return "-".join(map(str, summary["network"]))


def pareto_fronts(summaries: Sequence[dict], fronts: dict[str, list[dict]], winner: dict | None, board_name: str,
                  limits: dict[str, int | None]) -> bytes:
    """Validation accuracy against RAM and against instructions per sample: every trial
    that ran, the Pareto front, the winner and the board's limits."""
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2, sharey=True)
    titles = {"ram_bytes": f"training RAM on {board_name} (B)", "instructions": "instructions per training sample"}
    for ax, (cost_key, front) in zip(axes, fronts.items()):
        for status, style in (("done", {"color": "tab:blue", "label": "trial"}),
                              ("stopped", {"color": "tab:gray", "marker": "x", "label": "stopped early (ASHA)"})):
            points = [(s[cost_key], s["val_accuracy"]) for s in summaries if s["status"] == status]
            if points:
                ax.scatter(*zip(*points), s=18, alpha=0.7, **style)
        if front:
            ax.step([s[cost_key] for s in front], [s["val_accuracy"] for s in front], where="post",
                    color="tab:orange", label="Pareto front")
            for s in front:
                ax.annotate(_label(s), (s[cost_key], s["val_accuracy"]), fontsize="x-small",
                            xytext=(3, -9), textcoords="offset points")
        if winner is not None:
            ax.scatter([winner[cost_key]], [winner["val_accuracy"]], marker="*", s=160, color="tab:red", zorder=3,
                       label=f"best: {_label(winner)}")
        skipped = [s[cost_key] for s in summaries if s["status"] == "skipped" and cost_key in s]
        if skipped:  # no accuracy: a tick on the axis where each configuration would have been
            ax.scatter(skipped, [0.01] * len(skipped), marker="|", s=120, color="tab:red",
                       transform=ax.get_xaxis_transform(), label="skipped: does not fit")
            ran = [s[cost_key] for s in summaries if cost_key in s]
            ax.set_xlim(min(ran) / 1.3, max(ran) * 1.3)  # the blended transform does not autoscale x
        if limits.get(cost_key):
            ax.axvline(limits[cost_key], color="tab:red", linestyle=":", label="board limit")
        ax.set_xscale("log")
        ax.set_xlabel(titles[cost_key])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy")
    axes[0].legend(fontsize="small", loc="best")
    skipped = sum(s["status"] == "skipped" for s in summaries)
    fig.suptitle(f"bep-mcu sweep on {board_name}: {len(summaries)} configurations, {skipped} skipped "
                 f"(do not fit)", fontsize="medium")
    return _png(fig)


def adaptation_tradeoff(panels: Sequence[dict], metadata: dict[str, str] | None = None) -> bytes:
    """One panel per scenario: each method's target test accuracy after adapting against its
    instructions per sample learnt from (log scale), the accuracy before adapting as a line.
    ``panels``: {"title", "before", "methods": {label: [instructions, accuracy]}} each; the
    same label keeps its colour and marker in every panel."""
    labels = list(dict.fromkeys(label for panel in panels for label in panel["methods"]))
    markers = "osD^v<>PX*"
    style = {label: {"color": f"C{i % 10}", "marker": markers[i % len(markers)]} for i, label in enumerate(labels)}
    cols = 3
    rows = -(-len(panels) // cols)
    fig = _figure(11, 2.9 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        ax.axhline(panel["before"], color="tab:gray", linestyle=":", linewidth=1)
        for label, (instructions, accuracy) in panel["methods"].items():
            ax.scatter([instructions], [accuracy], s=36, alpha=0.85, **style[label])
        ax.set_xscale("log")
        ax.set_title(panel["title"], fontsize="small")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize="x-small")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("target test accuracy", fontsize="small")
    for col in range(min(cols, len(panels))):  # the lowest panel of each column
        axes.flat[col + cols * ((len(panels) - 1 - col) // cols)].set_xlabel(
            "instructions per sample learnt from, Cortex-M4", fontsize="small")
    handles = [ax.scatter([], [], s=36, **style[label]) for label in labels]
    handles.append(axes.flat[0].plot([], [], color="tab:gray", linestyle=":", linewidth=1)[0])
    fig.legend(handles, [*labels, "before adapting (frozen)"], loc="outside lower center", ncols=5, fontsize="small")
    return _png(fig, metadata)
