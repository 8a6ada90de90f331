"""Matplotlib figures rendered to base64 PNG (Agg backend: no display needed)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _encode(figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _errors(points: Sequence[dict[str, Any]]) -> list[list[float]]:
    return [[p["value"] - p["ci_low"] for p in points], [p["ci_high"] - p["value"] for p in points]]


def metric_bars(rows: Sequence[tuple[str, dict[str, Any]]], title: str) -> str:
    """Horizontal bars with 95% CI whiskers, one per (label, estimate)."""
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    labels = [label for label, _ in rows]
    estimates = [e for _, e in rows]
    axes.barh(labels, [e["value"] for e in estimates], xerr=_errors(estimates), color="#4a7bb7", capsize=3)
    axes.invert_yaxis()
    axes.set_xlabel("value (95% bootstrap CI)")
    axes.set_title(title)
    return _encode(figure)


def curve(points: Sequence[dict[str, Any]], x_label: str, y_label: str, title: str) -> str:
    """A line with a shaded 95% CI band."""
    figure, axes = plt.subplots(figsize=(6, 3.6))
    xs = [p["x"] for p in points]
    axes.plot(xs, [p["value"] for p in points], marker="o", color="#c0504d")
    axes.fill_between(xs, [p["ci_low"] for p in points], [p["ci_high"] for p in points], color="#c0504d", alpha=0.2)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return _encode(figure)
