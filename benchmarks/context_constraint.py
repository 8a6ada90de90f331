"""Does an early constraint still hold at turn 40? With and without ContextWindow's anchoring and compression.

    python benchmarks/context_constraint.py [--model smollm2] [--max-tokens 48]

Turn 1 sets a constraint (prices in euros, never dollars); turns 2-39 are a scripted trip-planning
chat that never mentions money; turn 40 asks for a price, once for each of 8 probe questions.
"Without": every turn sent verbatim (system + history + question). "With": a ContextWindow with
the constraint anchored at the end of the context, selective eviction of unreferenced turns and
a 600-token history budget. Greedy decoding on the llmkit-serve engine. Reported: compliance
(the reply gives a price in euros and none in dollars) and prompt tokens sent per probe.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmkit.context import ContextWindow, SelectiveEviction
from llmkit.core.backends import open_backend
from llmkit.core.sampling import SamplingParams

SYSTEM = "You are a helpful travel assistant."
CONSTRAINT = "Always give prices in euros (€), never in dollars."
FIRST_TURN = f"I am planning a trip to Lisbon. Important rule for this whole conversation: {CONSTRAINT}"
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
]


def scripted_history() -> list[dict[str, str]]:
    """Turns 1-39: the constraint, then 38 exchanges about places, weather and timing (no prices)."""
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


def complies(reply: str) -> bool:
    euros = re.search(r"€|\beuros?\b|\bEUR\b", reply, re.IGNORECASE) is not None
    dollars = re.search(r"\$|\bdollars?\b|\bUSD\b", reply, re.IGNORECASE) is not None
    return euros and not dollars


def with_window(backend, history: list[dict[str, str]], probe: str) -> list[dict]:
    window = ContextWindow(backend, zones={"history": 600}, policies=[SelectiveEviction(min_age=4)])
    window.system = SYSTEM
    window.objective = "help the user plan a trip to Lisbon"
    window.constraints = [CONSTRAINT]
    for message in history:
        window.add_message(message["role"], message["content"])
    return window.render(probe).messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--json", help="also write the results (with every reply) to this file")
    args = parser.parse_args()
    backend = open_backend("engine", model=args.model, kv_cache_memory="1GiB")
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    history = scripted_history()
    conditions = {
        "without (full history, no anchoring)": [
            [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": probe}] for probe in PROBES
        ],
        "with ContextWindow (anchoring + compression)": [with_window(backend, history, probe) for probe in PROBES],
    }
    results = {}
    for name, conversations in conditions.items():
        replies = backend.chat(conversations, params)
        texts = [r.choices[0].text for r in replies]
        results[name] = {
            "compliance": sum(map(complies, texts)) / len(texts),
            "prompt_tokens_per_probe": sum(r.prompt_tokens for r in replies) / len(replies),
            "replies": texts,
        }
    table = Table("condition", "compliance at turn 40", "prompt tokens per probe")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['compliance']:.0%} ({round(r['compliance'] * len(PROBES))}/{len(PROBES)})",
            f"{r['prompt_tokens_per_probe']:.0f}",
        )
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
