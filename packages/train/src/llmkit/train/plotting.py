"""Training curves from metrics.jsonl files as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError
from .metrics import read_metrics


def plot_runs(runs: Sequence[str | Path], metrics: Sequence[str], output: str | Path, title: str = "") -> Path:
    """One panel per metric, one line per run (x: step); missing metrics are skipped with a note in the panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics:
        raise ConfigError("name at least one metric to plot")
    loaded = {Path(run).name if Path(run).is_dir() else Path(run).parent.name: read_metrics(run) for run in runs}
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    for axis, name in zip(axes[0], metrics, strict=True):
        drawn = False
        for label, records in loaded.items():
            points = [(r["step"], r[name]) for r in records if isinstance(r.get(name), int | float)]
            if points:
                axis.plot(
                    *zip(*points, strict=True), marker="o" if len(points) < 30 else None, markersize=3, label=label
                )
                drawn = True
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if not drawn:
            axis.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=axis.transAxes)
        elif len(loaded) > 1:
            axis.legend(fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output
