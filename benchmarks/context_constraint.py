"""Does a constraint the user stated at turn 1 still hold at turn 40? Four ways of sending a long session.

    OMP_NUM_THREADS=2 python benchmarks/context_constraint.py [--probes 32] [--max-tokens 40] [--json out.json]

Turn 1 states a rule in conversation ("Always give prices in euros (€), never in dollars."); turns
2-39 are a scripted trip-planning chat that never mentions money; turn 40 asks for a price, once for
each probe question (32 by default, 40 written). Greedy decoding on the llmkit-serve engine; the same history every time.

- full history: every turn verbatim (system + 78 messages + the question).
- plain truncation: the most recent whole exchanges that fit the same 600-token history budget.
- ContextWindow, promoted constraints: the rule is detected in turn 1 (rules, nothing set by hand),
  anchored at the end of the context and its turn cut last; selective eviction; 600-token history zone.
- + rolling summary: the same, with turns older than the last 6 folded 16 at a time into an LM
  summary written by the same model (`json_generator`: on the engine, JSON decoded under the
  TurnSummary schema's grammar, then validated; 2 attempts); a fold that fails validation is
  counted and leaves the turns unfolded. The run prints (and the JSON records) which method wrote it.

Strict scorer: compliant only when the reply states a price in euros (a number with €, EUR or
"euro(s)") and mentions no dollars ($, USD, "dollar(s)"). 95% Wilson intervals; the ContextWindow
conditions are compared with full history by an exact McNemar test on the paired probes.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmkit.context import (
    ContextWindow,
    RollingSummary,
    SelectiveEviction,
    StructuredOutputError,
    Summarizer,
    json_generator,
)
from llmkit.core.backends import open_backend
from llmkit.core.sampling import SamplingParams

SYSTEM = "You are a helpful travel assistant."
CONSTRAINT = "Always give prices in euros (€), never in dollars."
FIRST_TURN = f"I am planning a trip to Lisbon. Important rule for this whole conversation: {CONSTRAINT}"
HISTORY_BUDGET = 600
PLACES = ["Belém Tower", "Alfama", "the Oceanarium", "Sintra", "LX Factory", "Cascais", "the Gulbenkian museum",
          "Bairro Alto", "Jerónimos Monastery", "the Time Out Market", "Cabo da Roca", "Praça do Comércio",
          "the tram 28 line"]  # fmt: skip
PROBES = [
    "How much does a hotel room in Lisbon cost per night? Give a price.",
    "What is the price of a dinner for two in Lisbon?",
    "How much is a taxi from the airport to the city centre?",
    "What does a day pass for public transport cost?",
    "How much is a ticket for the Oceanarium?",
    "What is the price of a coffee and a pastry?",
    "How much should I budget per day for food?",
    "What does a guided walking tour cost?",
    "How much is a ticket for the tram 28?",
    "What does a glass of port wine cost in a bar?",
    "How much is the train from Lisbon to Sintra?",
    "What is the entry fee for Belém Tower?",
    "How much does a bottle of water cost in a shop?",
    "What does a fado show with dinner cost?",
    "How much is a hostel bed per night?",
    "What is the price of a pastel de nata?",
    "How much does a bike rental cost for a day?",
    "What is the price of a museum pass?",
    "How much does a sim card with data cost?",
    "What does a boat trip on the Tagus cost?",
    "How much is a beer in Bairro Alto?",
    "What is the entry fee for Jerónimos Monastery?",
    "How much does a surf lesson in Cascais cost?",
    "What does a lunch menu of the day cost?",
    "How much is a ticket for the Gulbenkian museum?",
    "What is the price of a tuk-tuk tour?",
    "How much does parking cost per day in Lisbon?",
    "What does a seafood dinner cost?",
    "How much is the ferry to Cacilhas?",
    "What is the price of a cinema ticket?",
    "How much does a day trip to Cabo da Roca cost?",
    "What does a room in a five-star hotel cost?",
    "How much is a souvenir tile?",
    "What is the price of a football match ticket at Benfica?",
    "How much does a cooking class cost?",
    "What does a spa day cost?",
    "How much is a bus ticket to Porto?",
    "What is the price of a sardine sandwich at a festival?",
    "How much does laundry cost at a laundromat?",
    "What does an apartment rental cost for a week?",
]


def scripted_history() -> list[dict[str, str]]:
    """Turns 1-39: the rule, then 38 exchanges about places, weather and timing (no prices)."""
    turns = [
        {"role": "user", "content": FIRST_TURN},
        {"role": "assistant", "content": "Understood. Lisbon is a great choice!"},
    ]
    for index in range(38):
        place = PLACES[index % len(PLACES)]
        turns.append(
            {"role": "user", "content": f"Tell me about {place}. Is it worth visiting on day {index % 5 + 1}?"}
        )
        turns.append(
            {
                "role": "assistant",
                "content": f"{place} is worth a visit; go early in the morning to avoid crowds and wear comfortable shoes.",
            }
        )
    return turns


_EURO_PRICE = re.compile(r"€\s?\d|\d[\d.,]*\s?(?:€|euros?\b|EUR\b)|\bEUR\s?\d", re.IGNORECASE)
_DOLLARS = re.compile(r"\$|\bdollars?\b|\bUSD\b", re.IGNORECASE)


def score(reply: str) -> dict[str, bool]:
    """Strict: a price in euros (a number with its euro sign or word) and no dollars anywhere."""
    euro_price = _EURO_PRICE.search(reply) is not None
    dollars = _DOLLARS.search(reply) is not None
    return {"compliant": euro_price and not dollars, "euro_price": euro_price, "dollars": dollars}


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(a: list[bool], b: list[bool]) -> tuple[int, int, float]:
    """Discordant pairs (a only, b only) and the two-sided exact binomial p-value."""
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    n, k = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return only_a, only_b, p


def truncated(counter, history: list[dict[str, str]], budget: int) -> list[dict[str, str]]:
    """The most recent whole exchanges whose messages fit `budget` tokens (what plain truncation keeps)."""
    kept: list[dict[str, str]] = []
    used = 0
    for start in range(len(history) - 2, -1, -2):
        pair = history[start : start + 2]
        cost = sum(counter(m["content"]) for m in pair)
        if used + cost > budget:
            break
        kept[:0] = pair
        used += cost
    return kept


def build_window(backend, history, rolling: RollingSummary | None, folds: dict) -> ContextWindow:
    """Replay the session turn by turn, folding when due, as `Conversation` would."""
    window = ContextWindow(backend, zones={"history": HISTORY_BUDGET}, policies=[SelectiveEviction(min_age=4)])
    window.system = SYSTEM
    window.objective = "help the user plan a trip to Lisbon"
    for message in history:
        if rolling is not None and message["role"] == "user":
            try:
                folded = rolling.maybe_fold(window)
                folds["ok" if folded else "not due"] += 1
                if folded:
                    print(f"folded turns 1-{window.summarized_through}", file=sys.stderr, flush=True)
            except StructuredOutputError as err:
                print(f"a fold failed validation: {str(err)[:200]}", file=sys.stderr, flush=True)
                folds["failed"] += 1
                folds["errors"].append(str(err)[:300])
        window.add_message(message["role"], message["content"])
    return window


def progress(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)


def chat_warm(backend, conversations, params):
    """The first conversation alone (its prefix enters the cache), then the rest as one batch that hits it."""
    return backend.chat(conversations[:1], params) + backend.chat(conversations[1:], params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--probes", type=int, default=32)
    parser.add_argument("--fold-every", type=int, default=16, help="turns folded into the summary at a time")
    parser.add_argument("--summary-tokens", type=int, default=256, help="max tokens of one summary reply")
    parser.add_argument("--summary-attempts", type=int, default=2, help="structured-output attempts per fold")
    parser.add_argument("--json", help="also write the results (with every reply) to this file")
    args = parser.parse_args()
    backend = open_backend("engine", model=args.model, kv_cache_memory="1GiB")
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    history = scripted_history()
    probes = PROBES[: args.probes]

    started = time.perf_counter()
    progress("engine loaded", started)
    folds = {"ok": 0, "failed": 0, "not due": 0, "errors": []}
    summary_params = SamplingParams(temperature=0.0, max_tokens=args.summary_tokens)
    structured = json_generator(backend, max_attempts=args.summary_attempts, params=summary_params)
    progress(f"summaries: {structured.method} JSON ({type(structured).__name__})", started)
    rolling = RollingSummary(Summarizer(structured), live_turns=6, fold_every=args.fold_every)
    fold_started = time.perf_counter()
    summarized = build_window(backend, history, rolling, folds)
    fold_seconds = time.perf_counter() - fold_started
    progress(f"folds: {folds['ok']} ok, {folds['failed']} failed", started)
    promoted = build_window(backend, history, None, {})
    stated = [(r.text, r.turn, r.source) for r in promoted.stated_constraints]

    renders = {name: [w.render(p) for p in probes] for name, w in (("promoted", promoted), ("summary", summarized))}
    base = [{"role": "system", "content": SYSTEM}]
    kept = truncated(backend.count_tokens, history, HISTORY_BUDGET)
    conditions = {
        "full history": [[*base, *history, {"role": "user", "content": p}] for p in probes],
        f"plain truncation (last {len(kept) // 2} exchanges)": [[*base, *kept, {"role": "user", "content": p}] for p in probes],
        "ContextWindow, promoted constraints + rolling summary": [r.messages for r in renders["summary"]],
        "ContextWindow, promoted constraints": [r.messages for r in renders["promoted"]],
    }  # fmt: skip
    results = {}
    for name, conversations in conditions.items():
        t0 = time.perf_counter()
        replies = chat_warm(backend, conversations, params)
        texts = [r.choices[0].text for r in replies]
        scores = [score(t) for t in texts]
        results[name] = {
            "compliant": [s["compliant"] for s in scores],
            "dollars": sum(s["dollars"] for s in scores),
            "no_euro_price": sum(not s["euro_price"] for s in scores),
            "prompt_tokens_per_probe": sum(r.prompt_tokens for r in replies) / len(replies),
            "seconds": time.perf_counter() - t0,
            "replies": texts,
        }
        progress(f"{name}: {sum(s['compliant'] for s in scores)}/{len(scores)} compliant", started)
    n = len(probes)
    reference = results["full history"]["compliant"]
    table = Table("condition", "compliant", "95% CI", "dollars", "no € price", "vs full history", "prompt tokens")
    for name, r in results.items():
        k = sum(r["compliant"])
        low, high = wilson(k, n)
        only_this, only_full, p = mcnemar_exact(r["compliant"], reference)
        versus = "–" if name == "full history" else f"+{only_this}/−{only_full}, p={p:.2f}"
        r["wilson_95"] = [low, high]
        r["mcnemar_vs_full"] = {"only_this": only_this, "only_full": only_full, "p": p}
        table.add_row(
            name,
            f"{k / n:.0%} ({k}/{n})",
            f"{low:.0%}–{high:.0%}",
            str(r["dollars"]),
            str(r["no_euro_price"]),
            versus,
            f"{r['prompt_tokens_per_probe']:.0f}",
        )
    console = Console()
    console.print(table)
    console.print(f"promoted from the conversation: {stated}")
    console.print(
        f"rolling summary ({structured.method} JSON): {folds['ok']} folds, {folds['failed']} failed validation "
        f"({fold_seconds:.0f} s, attempts per fold {structured.attempts_used}); "
        f"summary constraints: {summarized.summary.constraints if summarized.summary else None}"
    )
    console.print(f"total {time.perf_counter() - started:.0f} s (after loading the engine)")
    if args.json:
        payload = {
            "probes": probes,
            "stated": stated,
            "folds": folds,
            "summary_method": structured.method,
            "fold_seconds": fold_seconds,
            "summary": summarized.summary.model_dump() if summarized.summary else None,
            "summarized_through": summarized.summarized_through,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
