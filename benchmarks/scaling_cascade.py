"""A cascade's cost/accuracy frontier against each backend alone, on the same items (docs/scaling.md).

Items: the 'ab + c =' few-shot prompts of scaling_self_consistency.py (same seed, same items). Tiers, both the
default model (SmolLM2-135M-Instruct, GGUF Q4_1) on the engine:
- cheap: greedy, one sample, top-2 logprobs reported;
- expensive: self-consistency over `--n` samples at `--temperature` (seeded per item).
Rule: `logprob_margin_below:threshold=t` (top-1 minus top-2 logprob of the cheap answer's tokens).

Every item starts with the engine's prefix cache emptied. Each backend runs alone on every item first (answers, generated tokens, prompt tokens computed, wall seconds:
all measured). Because the cheap tier is greedy and the expensive tier's seed is fixed per item, a cascade at
threshold t answers exactly what the two alone-runs answered (cheap if its margin >= t, else expensive) and
costs the cheap run plus the expensive run on the escalated items; the frontier over thresholds is composed
from those measurements. One threshold (the cheap tier's median margin) is also run as a real cascade, and the
script checks that its answers equal the composed ones and prints both costs (the real run's expensive tier
reads the prompt's blocks the cheap tier computed, as two tiers on one engine do; the composed cost does not).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/scaling_cascade.py --items 80 --out docs/img/scaling_cascade
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
from scaling_self_consistency import bootstrap_ci, items

from llmkit.core import SamplingParams
from llmkit.core.backends import open_backend
from llmkit.core.scaling import BackendSampler, Tier, answer_margin, cascade, self_consistency

COST_KEYS = ("generated_tokens", "prompt_tokens_computed", "wall_seconds")


def cold(backend) -> None:
    """Forget the engine's cached prefix blocks, so the next request computes its prompt (items start cold)."""
    backend.engine.block_manager.reset_prefix_cache()


def cost_of(result) -> dict[str, float]:
    return {key: float(getattr(result.cost, key)) for key in COST_KEYS}


def tiers_for(backend, index: int, args) -> list[Tier]:
    cheap = SamplingParams(temperature=0, max_tokens=6, stop=("\n",), top_logprobs=2)
    expensive = SamplingParams(
        temperature=args.temperature, max_tokens=6, stop=("\n",), seed=args.seed * 1000 + index, top_logprobs=2
    )  # the rule also runs after the last tier (its verdict is reported; the answer stands)
    return [
        Tier("cheap", BackendSampler(backend, cheap), 1),
        Tier("expensive", BackendSampler(backend, expensive), args.n),
    ]


def summarize(name: str, hits: list[bool], costs: list[dict[str, float]], escalated: int | None) -> dict:
    accuracy = float(np.mean(hits))
    low, high = bootstrap_ci(np.array(hits, dtype=float))
    per_item = {key: statistics.fmean(c[key] for c in costs) for key in COST_KEYS}
    return {"config": name, "accuracy": accuracy, "ci": [low, high], "escalated": escalated, **per_item}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=80)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thresholds", default="0.25,0.5,1,1.5,2,3,4")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    backend = open_backend("engine")
    data = items(args.items, args.seed)
    started, rows = time.perf_counter(), []
    for i, (prompt, gold) in enumerate(data):
        cheap_tier, expensive_tier = tiers_for(backend, i, args)
        cold(backend)
        cheap = self_consistency(cheap_tier.sampler, prompt, 1, answer="number")
        margin = answer_margin(cheap).margin if cheap.answer is not None else -math.inf
        cold(backend)
        expensive = self_consistency(expensive_tier.sampler, prompt, args.n, answer="number")
        rows.append({
            "gold": gold, "cheap": cheap.answer, "margin": margin, "cheap_cost": cost_of(cheap),
            "expensive": expensive.answer, "expensive_cost": cost_of(expensive),
        })  # fmt: skip
    alone_seconds = time.perf_counter() - started

    def composed(threshold: float) -> tuple[list[bool], list[dict[str, float]], int]:
        hits, costs, escalated = [], [], 0
        for row in rows:
            up = row["margin"] < threshold
            escalated += up
            hits.append((row["expensive"] if up else row["cheap"]) == row["gold"])
            extra = row["expensive_cost"] if up else dict.fromkeys(COST_KEYS, 0.0)
            costs.append({key: row["cheap_cost"][key] + extra[key] for key in COST_KEYS})
        return hits, costs, escalated

    table = [
        summarize("cheap alone (greedy)", [r["cheap"] == r["gold"] for r in rows], [r["cheap_cost"] for r in rows], None),
        summarize(
            f"expensive alone (self-consistency n={args.n}, T={args.temperature})",
            [r["expensive"] == r["gold"] for r in rows], [r["expensive_cost"] for r in rows], None,
        ),
    ]  # fmt: skip
    for threshold in [float(t) for t in args.thresholds.split(",")]:
        table.append(summarize(f"cascade, margin < {threshold:g}", *composed(threshold)))
    oracle_hits, oracle_costs, oracle_up = [], [], 0
    for row in rows:  # escalate exactly the items the cheap tier gets wrong: the best any rule could do
        up = row["cheap"] != row["gold"]
        oracle_up += up
        oracle_hits.append((row["expensive"] if up else row["cheap"]) == row["gold"])
        extra = row["expensive_cost"] if up else dict.fromkeys(COST_KEYS, 0.0)
        oracle_costs.append({key: row["cheap_cost"][key] + extra[key] for key in COST_KEYS})
    table.append(summarize("cascade, oracle rule (escalate iff cheap is wrong)", oracle_hits, oracle_costs, oracle_up))

    real_threshold = statistics.median(r["margin"] for r in rows if math.isfinite(r["margin"]))
    real_hits, real_costs, agree, real_up = [], [], 0, 0
    real_started = time.perf_counter()
    for i, ((prompt, gold), row) in enumerate(zip(data, rows, strict=True)):
        cold(backend)  # within the item, the expensive tier reuses the cheap tier's prompt blocks (same engine)
        result = cascade(tiers_for(backend, i, args), prompt, f"logprob_margin_below:threshold={real_threshold!r}")
        expected = row["expensive"] if row["margin"] < real_threshold else row["cheap"]
        agree += result.answer == expected
        real_up += result.tier == "expensive"
        real_hits.append(result.answer == gold)
        real_costs.append({
            "generated_tokens": float(result.generated_tokens),
            "prompt_tokens_computed": float(sum(r.cost.prompt_tokens_computed for r in result.results)),
            "wall_seconds": result.wall_seconds,
        })  # fmt: skip
    real = summarize(f"real cascade run, margin < {real_threshold:.3f} (median)", real_hits, real_costs, real_up)
    real_composed = summarize(f"composed, margin < {real_threshold:.3f}", *composed(real_threshold))
    table += [real_composed, real]

    summary = {
        "items": len(rows), "n": args.n, "temperature": args.temperature,
        "alone_runs_seconds": round(alone_seconds, 1), "real_cascade_seconds": round(time.perf_counter() - real_started, 1),
        "real_cascade_answers_equal_composed": f"{agree}/{len(rows)}", "table": table,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary | {"rows": rows}, indent=1))
    print("| configuration | accuracy [95% CI] | escalated | generated tok/item | prompt tok computed/item | s/item |")
    print("|---|---|---|---|---|---|")
    for r in table:
        escalated = "—" if r["escalated"] is None else f"{r['escalated']}/{len(rows)}"
        print(
            f"| {r['config']} | {r['accuracy']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {escalated} | "
            f"{r['generated_tokens']:.1f} | {r['prompt_tokens_computed']:.1f} | {r['wall_seconds']:.3f} |"
        )
    print(json.dumps({k: v for k, v in summary.items() if k != "table"}, indent=1))


if __name__ == "__main__":
    main()
