"""`llmkit eval judge`: pair two runs' answers item by item and have one or more judges compare them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .cache import ResponseCache
from .cli.models import open_model, parse_options
from .client import ModelClient
from .errors import EvalError
from .judge import PairItem, PairwiseJudge, RubricJudge, calibration, judge_agreement, length_bias, summarize_pairwise
from .results import load_samples
from .stats import bootstrap


def _question(record: dict[str, Any]) -> str:
    prompt = record.get("prompt", "")
    if isinstance(prompt, list):  # chat messages: the last user turn is the question
        return next((m["content"] for m in reversed(prompt) if m.get("role") == "user"), "")
    return prompt


def paired_items(run_a: str | Path, run_b: str | Path, task: str, limit: int | None = None) -> list[PairItem]:
    """Items both runs answered, with each run's first completion."""
    a = {r["id"]: r for r in load_samples(run_a, task)}
    b = {r["id"]: r for r in load_samples(run_b, task)}
    items = []
    for item_id, record in a.items():
        if item_id in b and record["response"].get("completions") and b[item_id]["response"].get("completions"):
            items.append(
                PairItem(
                    item_id,
                    _question(record),
                    record["response"]["completions"][0],
                    b[item_id]["response"]["completions"][0],
                )
            )
    if not items:
        raise EvalError(f"runs {run_a} and {run_b} share no generated answers for task {task!r}")
    return items[:limit] if limit else items


def _human_labels(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    labels = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if row.get("label") not in ("x", "y", "tie"):
                raise EvalError(f"{path}:{number}: label must be x, y or tie, got {row.get('label')!r}")
            labels[str(row["id"])] = row["label"]
    return labels


def judge_runs(args: argparse.Namespace) -> dict[str, Any]:
    """Every judge on every pair (both orders), plus agreement, calibration and length bias."""
    items = paired_items(args.run_a, args.run_b, args.task, args.limit)
    humans = _human_labels(args.human_labels)
    options = parse_options(args.judge_option)
    cache = ResponseCache()
    summary: dict[str, Any] = {
        "run_a": args.run_a,
        "run_b": args.run_b,
        "task": args.task,
        "method": args.method,
        "judges": {},
    }
    winners_by_judge = {}
    for spec in args.judge:
        backend_name, _, model = spec.rpartition(":")
        backend, identity = open_model(backend_name or "reference", model, dict(options), args.device)
        client = ModelClient(backend, identity, cache)
        judgments = PairwiseJudge(client, args.method, name=spec).judge(items)
        winners = [j.winner if j.consistent else "flipped" for j in judgments]
        winners_by_judge[spec] = winners
        entry: dict[str, Any] = {
            "pairwise": summarize_pairwise(judgments),
            "length_bias": length_bias(
                [j.winner for j in judgments], [len(i.answer_x) for i in items], [len(i.answer_y) for i in items]
            ),
            "judgments": [j.__dict__ for j in judgments],
        }
        if humans:
            entry["calibration"] = calibration(winners, [humans.get(i.id) for i in items])
        if args.rubric:
            rubric = RubricJudge(client, name=spec)
            scores_x = rubric.score([i.question for i in items], [i.answer_x for i in items])
            scores_y = rubric.score([i.question for i in items], [i.answer_y for i in items])
            entry["rubric"] = {
                side: bootstrap([s for s in scores if s is not None]).to_dict()
                if any(s is not None for s in scores)
                else None
                for side, scores in (("x", scores_x), ("y", scores_y))
            }
            entry["rubric_scores"] = {"x": scores_x, "y": scores_y}
        summary["judges"][spec] = entry
    if len(winners_by_judge) > 1:
        summary["agreement"] = judge_agreement(winners_by_judge)
    return summary
