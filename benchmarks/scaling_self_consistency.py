"""Accuracy vs N for core's scaling strategies on a small arithmetic task with the default model (docs/scaling.md).

Each item is sampled once with n=N_MAX through `self_consistency` on the engine (one request: the samples share
the prompt's blocks). The curves at N=k re-run the strategies on the first k of those samples (i.i.d., so an
unbiased draw of k) through a replaying sampler: self-consistency (majority vote), best-of-N and weighted vote
scored by the model's own mean token log-probability of the sample (a confidence scorer; no reward model is
trained for this task), and pass@k (any of the k right: what best-of-N with a perfect verifier would reach).
Greedy decoding is the N=1 baseline. 95% CIs: percentile bootstrap over items.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/scaling_self_consistency.py --items 80 --out docs/img/scaling
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from llmkit.core import SamplingParams
from llmkit.core.backends import open_backend
from llmkit.core.scaling import (
    BackendSampler,
    SampleBatch,
    best_of_n,
    self_consistency,
    weighted_vote_strategy,
)


def items(count: int, seed: int) -> list[tuple[str, str]]:
    """Few-shot completion prompts 'a + b =' with a two-digit a and a one-digit b (greedy SmolLM2-135M gets
    about a third right: above chance, far from solved)."""
    rng = random.Random(seed)

    def pair() -> tuple[int, int]:
        return rng.randint(10, 99), rng.randint(1, 9)

    shots = "\n".join(f"{a} + {b} = {a + b}" for a, b in (pair() for _ in range(4)))
    return [(f"{shots}\n{a} + {b} =", str(a + b)) for a, b in (pair() for _ in range(count))]


class Replay:
    """A sampler that hands back the first n of samples already drawn (no new tokens)."""

    def __init__(self, batch: SampleBatch):
        self.batch = batch

    def sample(self, prompt, n: int) -> SampleBatch:
        b = self.batch
        return SampleBatch(b.texts[:n], b.completion_tokens[:n], b.prompt_tokens, 0)


def lookup_scorer(table: dict[str, float]):
    """A scorer (prompt, completion) -> score that reads precomputed scores."""
    return lambda _prompt, text: table[text]


def bootstrap_ci(hits: np.ndarray, seed: int = 0, draws: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), (draws, len(hits)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=80)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    backend = open_backend("engine")
    greedy_sampler = BackendSampler(backend, SamplingParams(temperature=0, max_tokens=6, stop=("\n",)))
    ks = [k for k in (1, 2, 4, 8, 16, 32) if k <= args.n]
    strategies = ("self_consistency", "best_of_n", "weighted_vote", "pass")
    hits = {s: {k: [] for k in ks} for s in strategies} | {"greedy": {1: []}}
    totals = dict.fromkeys(("generated_tokens", "prompt_tokens", "prompt_tokens_computed", "prompt_tokens_reused"), 0)
    started, rows = time.perf_counter(), []
    for i, (prompt, gold) in enumerate(items(args.items, args.seed)):
        greedy = self_consistency(greedy_sampler, prompt, 1, answer="number")
        params = SamplingParams(temperature=args.temperature, max_tokens=6, stop=("\n",), seed=args.seed * 1000 + i)
        drawn = self_consistency(BackendSampler(backend, params), prompt, args.n, answer="number")
        for key in totals:
            totals[key] += getattr(drawn.cost, key)
        batch = SampleBatch(drawn.samples, drawn.completion_tokens, drawn.cost.prompt_tokens, 0)
        confidence = {}  # mean token log-probability of each distinct sample, as a probability in (0, 1]
        for text in dict.fromkeys(drawn.samples):
            scored = backend.loglikelihood([(prompt, text)])[0] if text else None
            confidence[text] = float(np.exp(scored.logprob / scored.num_tokens)) if scored else 0.0
        scorer = lookup_scorer(confidence)

        hits["greedy"][1].append(greedy.answer == gold)
        for k in ks:
            replay = Replay(batch)
            hits["self_consistency"][k].append(self_consistency(replay, prompt, k, answer="number").answer == gold)
            hits["best_of_n"][k].append(best_of_n(replay, prompt, k, scorer=scorer, answer="number").answer == gold)
            weighted = weighted_vote_strategy(replay, prompt, k, scorer=scorer, answer="number")
            hits["weighted_vote"][k].append(weighted.answer == gold)
            hits["pass"][k].append(gold in drawn.answers[:k])
        rows.append({"gold": gold, "greedy": greedy.answer, "answers": drawn.answers, "confidence": confidence})
    seconds = time.perf_counter() - started
    curves = {
        name: {k: (float(np.mean(v)), *bootstrap_ci(np.array(v, dtype=float))) for k, v in by_k.items()}
        for name, by_k in hits.items()
    }
    summary = {"items": len(rows), "n": args.n, "temperature": args.temperature, "seconds": round(seconds, 1)}
    summary |= {"accuracy": curves, "cost_of_the_sampling_requests": totals}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary | {"rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    plot(curves, ks, args.out.with_suffix(".svg"), args.items, args.temperature)


def plot(curves: dict, ks: list[int], path: Path, count: int, temperature: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    labels = {
        "self_consistency": "self-consistency (majority)",
        "best_of_n": "best-of-N (confidence)",
        "weighted_vote": "weighted vote (confidence)",
        "pass": "pass@N (perfect verifier)",
    }
    for offset, (name, label) in enumerate(labels.items()):
        acc = np.array([curves[name][k] for k in ks])
        xs = np.array(ks) * (1 + 0.03 * (offset - 1.5))  # spread the error bars apart
        style = {"linestyle": ":"} if name == "pass" else {}
        ax.errorbar(xs, acc[:, 0], yerr=[acc[:, 0] - acc[:, 1], acc[:, 2] - acc[:, 0]], marker="o", capsize=3,
                    label=label, **style)  # fmt: skip
    greedy = curves["greedy"][1]
    ax.axhline(greedy[0], color="gray", linestyle="--", label=f"greedy ({greedy[0]:.2f})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("samples (N)")
    ax.set_ylabel(f"accuracy ({count} items, 95% CI)")
    ax.set_title(f"SmolLM2-135M, 'ab + c =' few-shot, T={temperature}", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
