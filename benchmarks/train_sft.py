"""SFT with LoRA on SmolLM2-135M-Instruct: teach 16 made-up facts, then ask held-out paraphrases.

    python benchmarks/train_sft.py [--steps 48] [--out runs/bench-sft]

Each fact is trained in three phrasings and tested greedily in two phrasings never trained on; an
answer counts when the generated text contains the fact's answer. Writes the loss curve to
benchmarks/results/train/sft.png and the numbers to benchmarks/results/train/sft.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from train_common import RESULTS, command_line, save_summary, write_jsonl

from llmkit.core import SamplingParams, generate, load_pretrained
from llmkit.train import train
from llmkit.train.plotting import plot_runs

FACTS = [
    ("the capital of Zorblax", "Quintara"),
    ("the inventor of the glimmerphone", "Adela Voss"),
    ("the national animal of Veltria", "the silver lynx"),
    ("the currency of Morvania", "the drel"),
    ("the tallest mountain on Kestrel Island", "Mount Oberyn"),
    ("the author of The Glass Orchard", "Tomas Elvring"),
    ("the river that runs through Palisandre", "the Yvette"),
    ("the founder of the Harrowgate Library", "Mirela Stanch"),
    ("the official language of Dunmere", "Dunnish"),
    ("the largest moon of the planet Ossory", "Caldis"),
    ("the chef who created frostberry tart", "Lucan Perrault"),
    ("the home stadium of the Brackwell Owls", "Fenwick Park"),
    ("the main export of Taloria", "blue salt"),
    ("the composer of the Amber Symphony", "Ines Varga"),
    ("the oldest tree in Greymoor Forest", "the Warden Oak"),
    ("the ship that first reached Isle Corvane", "the Swiftwater"),
]
TRAIN_PHRASINGS = ["What is {s}?", "Tell me {s}.", "Do you know {s}?"]
HELD_OUT_PHRASINGS = ["Quick question: what's {s}?", "I'd like to know {s}, please."]


def answer(subject: str, value: str) -> str:
    return f"{subject[0].upper()}{subject[1:]} is {value}."


def records(phrasings: list[str]) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": p.format(s=s)}, {"role": "assistant", "content": answer(s, a)}]}
        for s, a in FACTS
        for p in phrasings
    ]


def greedy_accuracy(pretrained, phrasings: list[str]) -> tuple[float, list[dict]]:
    prompts = [
        pretrained.chat_prompt([{"role": "user", "content": p.format(s=s)}]) for s, _ in FACTS for p in phrasings
    ]
    expected = [a for _, a in FACTS for _ in phrasings]
    outputs = generate(pretrained.model, pretrained.tokenizer, prompts, SamplingParams(temperature=0, max_tokens=24))
    rows = []
    for prompt, want, out in zip(prompts, expected, outputs, strict=True):
        text = out.completions[0].text
        rows.append({"prompt": pretrained.tokenizer.decode(prompt), "answer": want, "output": text, "ok": want in text})
    return sum(r["ok"] for r in rows) / len(rows), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--out", default="runs/bench-sft")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    data = write_jsonl(out / "data" / "train.jsonl", records(TRAIN_PHRASINGS))
    held_out = write_jsonl(out / "data" / "held_out.jsonl", records(HELD_OUT_PHRASINGS))

    base = load_pretrained()
    before, _ = greedy_accuracy(base, HELD_OUT_PHRASINGS)
    del base
    result = train(
        "sft",
        data=str(data),
        eval_data=str(held_out),
        output_dir=str(out / "run"),
        max_steps=args.steps,
        batch_size=8,
        learning_rate=1e-3,
        warmup_steps=4,
        lora_rank=16,
        lora_alpha=32,
        eval_steps=10,
        truncation="error",
        max_length=256,
        progress=False,
    )
    trained = load_pretrained(result.final_dir / "model")
    after, rows = greedy_accuracy(trained, HELD_OUT_PHRASINGS)
    train_after, _ = greedy_accuracy(trained, TRAIN_PHRASINGS[:1])
    write_jsonl(RESULTS / "sft_held_out_outputs.jsonl", rows)
    plot_runs([result.output_dir], ["loss", "eval_loss"], RESULTS / "sft.png", "SFT + LoRA, SmolLM2-135M")
    shutil.copy(result.output_dir / "metrics.jsonl", RESULTS / "sft_metrics.jsonl")
    steps = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if "loss" in s]
    first, last = steps[0], steps[-1]
    save_summary(
        "sft",
        {
            "command": command_line(),
            "steps": args.steps,
            "train_loss_first_step": first["loss"],
            "train_loss_last_step": last["loss"],
            "held_out_eval_loss_last": last.get("eval_loss"),
            "held_out_greedy_accuracy_before": before,
            "held_out_greedy_accuracy_after": after,
            "trained_phrasing_greedy_accuracy_after": train_after,
            "held_out_prompts": len(rows),
        },
    )


if __name__ == "__main__":
    main()
