"""Data files for the worked examples of docs/train.md: the same data the measured runs use.

    python benchmarks/train_example_data.py [--out runs/data]

facts.jsonl / facts_held_out.jsonl   chat SFT: 16 made-up facts, 3 trained phrasings / 2 held-out ones
pairs.jsonl / pairs_held_out.jsonl   preference pairs: BIG-bench hhh_alignment, split by prompt
prompts.jsonl                        PPO prompts: the training pairs' prompts, once each
addition.jsonl                       GRPO/RLVR: two-digit additions checked by the math_answer verifier
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train_common import hhh_pairs, write_jsonl
from train_grpo import problems
from train_sft import HELD_OUT_PHRASINGS, TRAIN_PHRASINGS, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/data")
    parser.add_argument("--cache", default="runs/bigbench", help="where the bigbench sdist's task is kept")
    args = parser.parse_args()
    out, cache = Path(args.out), Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    train_pairs, held_out = hhh_pairs(cache)
    prompts = list({p["prompt"][0]["content"]: {"prompt": p["prompt"]} for p in train_pairs}.values())
    files = {
        "facts.jsonl": records(TRAIN_PHRASINGS),
        "facts_held_out.jsonl": records(HELD_OUT_PHRASINGS),
        "pairs.jsonl": train_pairs,
        "pairs_held_out.jsonl": held_out,
        "prompts.jsonl": prompts,
        "addition.jsonl": problems(400, seed=0),
    }
    for name, rows in files.items():
        print(f"{write_jsonl(out / name, rows)}: {len(rows)} records")


if __name__ == "__main__":
    main()
