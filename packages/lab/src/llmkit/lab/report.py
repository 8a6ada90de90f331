"""The experiment report: per-arm means with CIs across seeds, paired item tests against the reference arm,
each factor's effect next to its noise floor (the seed-to-seed spread), and a plot."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from llmkit.eval.results import load_results, load_samples
from llmkit.eval.stats import mcnemar, paired_bootstrap

from .spec import Experiment

# Student's t, two-sided 95%, for 1..30 degrees of freedom (beyond: the normal 1.96).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
T_975 += (2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile(df: int) -> float:
    return T_975[df - 1] if df <= len(T_975) else NormalDist().inv_cdf(0.975)


def seed_interval(values: list[float]) -> dict[str, float]:
    """Mean across seeds with a t 95% interval (none from a single seed)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "sd": math.nan, "seeds": len(values)}
    sd = float(np.std(values, ddof=1))
    half = t_quantile(len(values) - 1) * sd / math.sqrt(len(values))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "sd": sd, "seeds": len(values)}


def _unit_values(state: dict[str, Any]) -> dict[str, dict[int, dict[str, float]]]:
    """arm -> seed -> metric -> value (final train loss/eval loss and every eval metric)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for unit in state["units"].values():
        values = {**unit.get("train", {}), **unit.get("eval", {})}
        out.setdefault(unit["arm"], {})[unit["seed"]] = values
    return out


def _primary_metrics(state: dict[str, Any]) -> dict[str, str]:
    """task -> primary metric, read from any unit's results.json."""
    for unit in state["units"].values():
        path = Path(unit["dir"]) / "eval"
        if (path / "results.json").is_file():
            return {t: e.get("primary_metric", "acc") for t, e in load_results(path)["tasks"].items()}
    return {}


def _paired(state: dict[str, Any], reference: str, arm: str, task: str, metric: str) -> dict[str, Any] | None:
    """Items paired by (seed, id) between two arms: bootstrap CI of arm − reference and McNemar when binary."""
    by_arm: dict[str, dict[tuple[int, str], float]] = {reference: {}, arm: {}}
    for unit in state["units"].values():
        if unit["arm"] in by_arm and (Path(unit["dir"]) / "eval" / "samples" / f"{task}.jsonl").is_file():
            for record in load_samples(Path(unit["dir"]) / "eval", task):
                if record["metrics"].get(metric) is not None:
                    by_arm[unit["arm"]][(unit["seed"], record["id"])] = float(record["metrics"][metric])
    keys = sorted(set(by_arm[reference]) & set(by_arm[arm]))
    if not keys:
        return None
    x = [by_arm[reference][k] for k in keys]
    y = [by_arm[arm][k] for k in keys]
    out: dict[str, Any] = {"pairs": len(keys), "difference": paired_bootstrap(x, y).to_dict()}
    if all(v in (0.0, 1.0) for v in x + y):
        test = mcnemar([v == 1.0 for v in x], [v == 1.0 for v in y])
        out["mcnemar"] = {"worse": test.b, "better": test.c, "exact_p": test.exact_p}
    return out


def build_report(experiment: Experiment, state: dict[str, Any]) -> dict[str, Any]:
    values = _unit_values(state)
    primary = _primary_metrics(state)
    metrics = [f"eval.{t}.{m}" for t, m in primary.items()]
    metrics += [
        m for m in ("train.loss", "train.eval_loss") if any(m in v for s in values.values() for v in s.values())
    ]
    arms = [a for a in experiment.arms if a.name in values]
    per_arm = {
        arm.name: {
            "levels": arm.levels,
            "metrics": {
                m: {
                    **seed_interval([v[m] for v in values[arm.name].values() if m in v]),
                    "per_seed": {str(s): v[m] for s, v in sorted(values[arm.name].items()) if m in v},
                }
                for m in metrics
                if any(m in v for v in values[arm.name].values())
            },
        }
        for arm in arms
    }
    reference = experiment.reference.name
    paired = {
        arm.name: {task: _paired(state, reference, arm.name, task, metric) for task, metric in primary.items()}
        for arm in arms
        if arm.name != reference
    }
    return {
        "experiment": experiment.name,
        "reference_arm": reference,
        "seeds": experiment.spec.seeds,
        "metrics": metrics,
        "arms": per_arm,
        "paired": paired,
        "effects": factor_effects(experiment, values, metrics),
    }


def factor_effects(experiment: Experiment, values: dict[str, dict[int, dict[str, float]]], metrics: list[str]):
    """Each factor level against the factor's first level: difference of the arms' means (averaged over the
    other factors), the noise floor (pooled seed-to-seed sd within arms) and the standard error it implies."""
    out: dict[str, list[dict[str, Any]]] = {}
    for metric in metrics:
        per_arm = {a: [v[metric] for v in seeds.values() if metric in v] for a, seeds in values.items()}
        variances = [np.var(x, ddof=1) for x in per_arm.values() if len(x) > 1]
        noise = float(math.sqrt(np.mean(variances))) if variances else math.nan
        rows = []
        for factor in experiment.spec.factors:
            groups: dict[str, list[float]] = {}
            for arm in experiment.arms:
                if per_arm.get(arm.name):
                    groups.setdefault(_label(arm.levels[factor]), []).extend(per_arm[arm.name])
            labels = list(dict.fromkeys(_label(a.levels[factor]) for a in experiment.arms if per_arm.get(a.name)))
            if len(labels) < 2:
                continue
            base = groups[labels[0]]
            for label in labels[1:]:
                other = groups[label]
                effect = float(np.mean(other) - np.mean(base))
                se = noise * math.sqrt(1 / len(other) + 1 / len(base)) if not math.isnan(noise) else math.nan
                rows.append(
                    {
                        "factor": factor,
                        "from": labels[0],
                        "to": label,
                        "effect": effect,
                        "noise_floor_sd": noise,
                        "effect_se": se,
                        "effect_over_noise": effect / se if se and not math.isnan(se) else math.nan,
                    }
                )
        out[metric] = rows
    return out


def _label(value: Any) -> str:
    return str(value)


def _fmt(value: float, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def report_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Experiment {report['experiment']}",
        "",
        f"seeds {report['seeds']}, reference arm `{report['reference_arm']}`",
    ]
    for metric in report["metrics"]:
        lines += [
            "",
            f"## {metric}",
            "",
            "| arm | mean | 95% CI across seeds | seed sd | per seed |",
            "|---|---|---|---|---|",
        ]
        for arm, entry in report["arms"].items():
            m = entry["metrics"].get(metric)
            if m:
                per_seed = ", ".join(f"{s}: {_fmt(v)}" for s, v in m["per_seed"].items())
                lines.append(
                    f"| {arm} | {_fmt(m['mean'])} | [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}] | {_fmt(m['sd'])} | {per_seed} |"
                )
        rows = report["effects"].get(metric) or []
        if rows:
            lines += ["", "| factor | change | effect | noise floor (seed sd) | effect / SE |", "|---|---|---|---|---|"]
            for r in rows:
                lines.append(
                    f"| {r['factor']} | {r['from']} → {r['to']} | {r['effect']:+.4f} | {_fmt(r['noise_floor_sd'])} | "
                    f"{_fmt(r['effect_over_noise'], 2)} |"
                )
    if report["paired"]:
        lines += [
            "",
            f"## Paired item tests against `{report['reference_arm']}` (items paired by seed and id)",
            "",
            "| arm | task | pairs | difference (95% CI) | worse / better | McNemar exact p |",
            "|---|---|---|---|---|---|",
        ]
        for arm, tasks in report["paired"].items():
            for task, test in tasks.items():
                if test is None:
                    continue
                d = test["difference"]
                mc = test.get("mcnemar")
                lines.append(
                    f"| {arm} | {task} | {test['pairs']} | {d['value']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] | "
                    + (f"{mc['worse']} / {mc['better']} | {mc['exact_p']:.3g} |" if mc else "— | — |")
                )
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], output: Path) -> Path:
    """One panel per metric: each arm's seeds as dots, the mean with its 95% CI across seeds as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = report["metrics"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    arms = list(report["arms"])
    for axis, metric in zip(axes[0], metrics, strict=True):
        for x, arm in enumerate(arms):
            m = report["arms"][arm]["metrics"].get(metric)
            if not m:
                continue
            seeds = list(m["per_seed"].values())
            axis.scatter([x] * len(seeds), seeds, s=14, color="0.5", zorder=3)
            if not math.isnan(m["ci_low"]):
                axis.errorbar(
                    x, m["mean"], yerr=[[m["mean"] - m["ci_low"]], [m["ci_high"] - m["mean"]]], fmt="o", capsize=4
                )
            else:
                axis.plot(x, m["mean"], "o")
        axis.set_xticks(range(len(arms)), arms, rotation=20, fontsize=7)
        axis.set_title(metric, fontsize=9)
        axis.grid(alpha=0.3)
    figure.suptitle(f"{report['experiment']}: mean and 95% CI across seeds (dots: seeds)", fontsize=9)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output
