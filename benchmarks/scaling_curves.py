"""Accuracy vs compute (N = 1, 2, 4, 8, 16) on GSM8K and HumanEval with the default model (docs/scaling.md).

Each item is sampled ONCE: one engine request with n=16 (`BackendSampler`), so the 16 sequences share the prompt's
KV blocks through the prefix cache; the prompt tokens computed are measured and reported against the naive count
(16 x prompt length). Every N < 16 is derived from those 16 samples by subsampling: for each item the expected
accuracy over random N-subsets (self-consistency, best-of-N; `--subsets` draws per item) or exactly (pass@N, the
unbiased estimator of Chen et al. 2021). The compute axis is generated tokens per item: N x the item's mean
tokens per sample, averaged over items. 95% CIs: percentile bootstrap over items.

- GSM8K (eval's `gsm8k` prompt: 8-shot chain of thought, raw completion): self-consistency = majority vote on the
  extracted number (`answer="number"`); pass@N = any of N right (an oracle, not a strategy: no verifier exists).
- HumanEval (eval's `humaneval` prompt: the function signature + docstring, raw completion, Codex stops):
  self-consistency = majority vote on the normalized code; best-of-N with the PUBLIC examples as verifier (the
  docstring's `>>>` examples turned into asserts, run in core's sandbox; the first passing sample, else the first
  sample); pass@N = best-of-N with the HIDDEN tests as verifier (an upper bound: those tests score the item).

Rows are appended to OUT/rows.jsonl as items finish (a rerun resumes); the summary goes to OUT.json/.svg.

    nice OMP_NUM_THREADS=2 .venv/bin/python benchmarks/scaling_curves.py --gsm8k-items 40 --humaneval-items 30 \
        --out docs/img/scaling_curves
"""

from __future__ import annotations

import argparse
import ast
import doctest
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from llmkit.core import SamplingParams
from llmkit.core.backends import open_backend
from llmkit.core.sandbox import SandboxLimits, run_code_tests
from llmkit.core.scaling import BackendSampler
from llmkit.core.scaling.answers import code_answer, normalize_number, number_answer
from llmkit.eval.data import builtin
from llmkit.eval.scoring.code import run_humaneval
from llmkit.eval.tasks.builtin import GSM8K_PROMPT, GSM8K_STOP, HUMANEVAL_STOP, _gsm8k_with_exemplars

NS = (1, 2, 4, 8, 16)
LIMITS = SandboxLimits(timeout_s=10)


def public_tests(prompt: str) -> str | None:
    """The docstring's `>>>` examples as asserts (only those whose expected output is a Python literal)."""
    functions = [node for node in ast.parse(prompt).body if isinstance(node, ast.FunctionDef)]
    docstring = ast.get_docstring(functions[-1]) if functions else None
    asserts = []
    for example in doctest.DocTestParser().get_examples(docstring or ""):
        want = example.want.strip()
        try:
            ast.literal_eval(want)
            ast.parse(example.source.strip(), mode="eval")
        except (ValueError, SyntaxError):
            continue
        asserts.append(f"assert ({example.source.strip()}) == ({want})")
    return "\n".join(asserts) or None


def passes_hidden_tests(problem: dict, completion: str) -> bool:
    return run_humaneval(problem, completion, LIMITS).passed


def passes_public_tests(problem: dict, public: str, completion: str) -> bool:
    return run_code_tests(problem["prompt"] + completion, [public], limits=LIMITS).passed


def sample_item(sampler: BackendSampler, prompt: str) -> dict:
    started = time.perf_counter()
    batch = sampler.sample(prompt, NS[-1])
    return {
        "texts": batch.texts,
        "completion_tokens": batch.completion_tokens,
        "prompt_tokens": batch.prompt_tokens,
        "prompt_tokens_computed": batch.prompt_tokens_computed,
        "seconds": round(time.perf_counter() - started, 2),
    }


def run_gsm8k(backend, count: int, args, rows_path: Path, done: set[str]) -> None:
    data = _gsm8k_with_exemplars()
    params = SamplingParams(temperature=args.temperature, max_tokens=args.gsm8k_max_tokens, stop=GSM8K_STOP)
    for index, sample in enumerate(data.samples[:count]):
        key = f"gsm8k/{sample.id}"
        if key in done:
            continue
        prompt = GSM8K_PROMPT.raw(sample, data.fewshot_pool)
        row = sample_item(BackendSampler(backend, params.replace(seed=args.seed * 1000 + index)), prompt)
        gold = normalize_number(str(sample.target))
        answers = [number_answer(t) for t in row["texts"]]
        row |= {"key": key, "task": "gsm8k", "gold": gold, "answers": answers, "correct": [a == gold for a in answers]}
        append(rows_path, row)


def run_humaneval_items(backend, count: int, args, rows_path: Path, done: set[str]) -> None:
    data = builtin.humaneval()
    params = SamplingParams(temperature=args.temperature, max_tokens=args.humaneval_max_tokens, stop=HUMANEVAL_STOP)
    for index, sample in enumerate(data.samples[:count]):
        key = f"humaneval/{sample.id}"
        if key in done:
            continue
        problem = sample.fields
        row = sample_item(BackendSampler(backend, params.replace(seed=args.seed * 1000 + index)), problem["prompt"])
        public = public_tests(problem["prompt"])
        distinct = list(dict.fromkeys(row["texts"]))
        with ThreadPoolExecutor(2) as pool:
            hidden = dict(zip(distinct, pool.map(partial(passes_hidden_tests, problem), distinct), strict=True))
            shown = (
                dict(zip(distinct, pool.map(partial(passes_public_tests, problem, public), distinct), strict=True))
                if public
                else dict.fromkeys(distinct, True)
            )
        row |= {
            "key": key,
            "task": "humaneval",
            "public_tests": public,
            "answers": [code_answer(t) for t in row["texts"]],
            "correct": [hidden[t] for t in row["texts"]],
            "public_pass": [shown[t] for t in row["texts"]],
            "has_public_tests": public is not None,
        }
        append(rows_path, row)


def rescore_public(rows: list[dict]) -> int:
    """Re-run the public examples on rows whose stored tests differ from what `public_tests` extracts now
    (rows written by an earlier version of the extraction); returns how many rows changed."""
    problems = {f"humaneval/{s.id}": s.fields for s in builtin.humaneval().samples}
    changed = 0
    for row in rows:
        if row["task"] != "humaneval":
            continue
        problem = problems[row["key"]]
        public = public_tests(problem["prompt"])
        if "public_tests" in row and row["public_tests"] == public:
            continue
        distinct = list(dict.fromkeys(row["texts"]))
        with ThreadPoolExecutor(2) as pool:
            shown = (
                dict(zip(distinct, pool.map(partial(passes_public_tests, problem, public), distinct), strict=True))
                if public
                else dict.fromkeys(distinct, True)
            )
        row |= {
            "public_tests": public,
            "public_pass": [shown[t] for t in row["texts"]],
            "has_public_tests": bool(public),
        }
        changed += 1
    return changed


def append(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{row['key']}: {sum(row['correct'])}/16 right, {row['seconds']} s", flush=True)


# -- analysis: every N from the 16 samples --------------------------------------------------------------------


def majority_correct(answers: list, correct: list[bool]) -> bool:
    """Self-consistency on a subset: the most common extracted answer (ties: first seen); None never wins unless
    nothing else was extracted."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return False
    best = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == best)
    return correct[answers.index(winner)]


def best_of_n_correct(public: list[bool], correct: list[bool]) -> bool:
    """Best-of-N with the public examples: the first sample passing them, else the first sample."""
    chosen = public.index(True) if True in public else 0
    return correct[chosen]


def pass_at_n(n_total: int, c: int, k: int) -> float:
    if n_total - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n_total - c + 1, n_total + 1)))


def item_curves(row: dict, subsets: int, rng: np.random.Generator) -> dict[str, dict[int, float]]:
    total = len(row["correct"])
    out: dict[str, dict[int, float]] = {"self_consistency": {}, "pass": {}}
    if "public_pass" in row:
        out["best_of_n_public"] = {}
    for k in NS:
        draws = [np.arange(total)] if k == total else [rng.choice(total, k, replace=False) for _ in range(subsets)]
        pick = [[int(i) for i in d] for d in draws]
        out["self_consistency"][k] = float(
            np.mean([majority_correct([row["answers"][i] for i in p], [row["correct"][i] for i in p]) for p in pick])
        )
        if "public_pass" in row:
            out["best_of_n_public"][k] = float(
                np.mean([best_of_n_correct([row["public_pass"][i] for i in p], [row["correct"][i] for i in p])
                         for p in pick])
            )  # fmt: skip
        out["pass"][k] = pass_at_n(total, sum(row["correct"]), k)
    return out


def bootstrap_ci(values: np.ndarray, seed: int = 0, draws: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (draws, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(rows: list[dict], subsets: int) -> dict:
    rng = np.random.default_rng(0)
    summary = {}
    for task in ("gsm8k", "humaneval"):
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        per_item = [item_curves(r, subsets, rng) for r in task_rows]
        mean_tokens = np.array([np.mean(r["completion_tokens"]) for r in task_rows])
        prompt = sum(r["prompt_tokens"] for r in task_rows)
        computed = sum(r["prompt_tokens_computed"] for r in task_rows)
        curves = {
            name: {
                k: (float(np.mean(v)), *bootstrap_ci(v))
                for k in NS
                for v in [np.array([item[name][k] for item in per_item])]
            }
            for name in per_item[0]
        }
        summary[task] = {
            "items": len(task_rows),
            "accuracy": curves,
            "generated_tokens_per_item": {k: round(float(k * mean_tokens.mean()), 1) for k in NS},
            "prompt_tokens_naive": prompt * NS[-1],
            "prompt_tokens_computed": computed,
            "sampling_seconds": round(sum(r["seconds"] for r in task_rows), 1),
            "items_with_any_right_sample": sum(any(r["correct"]) for r in task_rows),
        }
        if task == "humaneval":
            summary[task]["items_with_public_examples"] = sum(r["has_public_tests"] for r in task_rows)
    return summary


def markdown(summary: dict) -> str:
    """One table per task: accuracy [95% CI] per strategy and generated tokens per item, by N."""
    names = {"self_consistency": "self-consistency", "best_of_n_public": "best-of-N (public examples)",
             "pass": "pass@N (oracle: upper bound)"}  # fmt: skip
    out = []
    for task, result in summary.items():
        present = [n for n in names if n in result["accuracy"]]
        out.append(f"{task} ({result['items']} items)\n")
        out.append("| N | generated tok/item | " + " | ".join(names[n] for n in present) + " |")
        out.append("|---" * (len(present) + 2) + "|")
        for k in NS:
            cells = [
                "{:.3f} [{:.3f}, {:.3f}]".format(*result["accuracy"][n][k]) for n in present
            ]  # fmt: skip
            out.append(f"| {k} | {result['generated_tokens_per_item'][k]:.0f} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot(summary: dict, path: Path, temperature: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {
        "self_consistency": ("self-consistency (majority)", {}),
        "best_of_n_public": ("best-of-N (public examples as verifier)", {}),
        "pass": ("pass@N (hidden tests / gold as verifier: upper bound)", {"linestyle": ":"}),
    }
    fig, axes = plt.subplots(1, len(summary), figsize=(5.2 * len(summary), 3.8), squeeze=False)
    for ax, (task, result) in zip(axes[0], summary.items(), strict=True):
        tokens = [result["generated_tokens_per_item"][k] for k in NS]
        for name, (label, style) in labels.items():
            if name not in result["accuracy"]:
                continue
            acc = np.array([result["accuracy"][name][k] for k in NS])
            ax.errorbar(tokens, acc[:, 0], yerr=[acc[:, 0] - acc[:, 1], acc[:, 2] - acc[:, 0]], marker="o",
                        capsize=3, label=label, **style)  # fmt: skip
        for k, x in zip(NS, tokens, strict=True):
            ax.annotate(f"N={k}", (x, 0), textcoords="offset points", xytext=(0, 4), fontsize=7, ha="center")
        highest = max(result["accuracy"][name][k][2] for name in result["accuracy"] for k in NS)
        ax.set_ylim(-0.02, max(0.25, highest + 0.05))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("generated tokens per item")
        ax.set_ylabel(f"accuracy ({result['items']} items, 95% CI)")
        ax.set_title(f"SmolLM2-135M, {task}, T={temperature}", fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gsm8k-items", type=int, default=40)
    parser.add_argument("--humaneval-items", type=int, default=30)
    parser.add_argument("--gsm8k-max-tokens", type=int, default=256)
    parser.add_argument("--humaneval-max-tokens", type=int, default=384)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subsets", type=int, default=200, help="random N-subsets per item for N < 16")
    parser.add_argument("--summarize-only", action="store_true", help="only recompute the summary from the rows")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows_path = args.out.with_name(args.out.name + "_rows.jsonl")
    done = {json.loads(line)["key"] for line in rows_path.read_text().splitlines()} if rows_path.exists() else set()
    if not args.summarize_only:
        backend = open_backend("engine")
        try:
            run_humaneval_items(backend, args.humaneval_items, args, rows_path, done)
            run_gsm8k(backend, args.gsm8k_items, args, rows_path, done)
        finally:
            close = getattr(backend, "close", None)
            if close:
                close()
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    if rescore_public(rows):
        rows_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = summarize(rows, args.subsets) | {"temperature": args.temperature, "samples_per_item": NS[-1]}
    tasks = {t: summary[t] for t in ("gsm8k", "humaneval") if t in summary}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print(markdown(tasks))
    plot(tasks, args.out.with_suffix(".svg"), args.temperature)


if __name__ == "__main__":
    main()
