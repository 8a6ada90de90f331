"""Training speed: SFT tokens/s (full and LoRA) next to TRL's SFTTrainer on the same model and data in the
same run, and where a GRPO step's time goes (rollout vs update) in two regimes.

    python benchmarks/train.py [--records 32] [--steps 4] [--skip-trl] [--skip-grpo]

SFT: SmolLM2-135M-Instruct in float32, 32 chat records, batch 4, loss on every token, no packing; the same
weights are exported to an HF directory for transformers/TRL (bf16 autocast and gradient checkpointing off on
both sides; TRL's LoRA is PEFT with the same rank, alpha and target layers). tokens/s = non-padding tokens of the timed steps
divided by their wall time; the first step of each run is warm-up and not timed.
GRPO: 2 prompts x 4 completions per step, one LoRA update; "generation-heavy" asks for 96 new tokens,
"update-heavy" for 12 tokens with full-weight updates.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from train_common import command_line, save_summary, write_jsonl

from llmkit.core import load_pretrained
from llmkit.train import train
from llmkit.train.metrics import read_metrics
from llmkit.train.modeling import save_pretrained

TOPICS = ["rivers", "volcanoes", "bread", "chess", "bees", "glass", "tides", "owls", "copper", "maps", "clouds", "tea"]
LORA = {
    "rank": 16,
    "alpha": 32,
    "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def records(count: int) -> list[dict]:
    rows = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        question = f"Tell me one surprising fact about {topic} (number {i})."
        answer = f"Here is a fact about {topic}: " + " ".join(
            f"detail {j} of {topic} matters." for j in range(3 + i % 5)
        )
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return rows


def llmkit_sft(data: Path, out: Path, steps: int, lora: bool) -> float:
    options = {"lora_rank": LORA["rank"], "lora_alpha": LORA["alpha"]} if lora else {}
    result = train(
        "sft",
        data=str(data),
        output_dir=str(out),
        max_steps=steps + 1,
        batch_size=4,
        learning_rate=1e-5,
        loss_on="all",
        max_length=512,
        progress=False,
        save_merged=False,
        **options,
    )
    timed = [r for r in read_metrics(result.output_dir) if "loss" in r][1:]
    return sum(r["tokens"] for r in timed) / sum(r["step_time"] for r in timed)


def trl_sft(data: Path, hf_dir: Path, out: Path, steps: int, lora: bool) -> float:
    import datasets
    import transformers
    import trl

    class StepTimer(transformers.TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.started)

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype="float32")
    peft_config = None
    if lora:
        import peft

        peft_config = peft.LoraConfig(r=LORA["rank"], lora_alpha=LORA["alpha"], target_modules=LORA["targets"])
    config = trl.SFTConfig(
        output_dir=str(out),
        max_steps=steps + 1,
        per_device_train_batch_size=4,
        learning_rate=1e-5,
        report_to="none",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,  # TRL turns it on by default; llmkit's default is off
        max_length=512,
        logging_steps=1,
        save_strategy="no",
        dataloader_drop_last=True,
        assistant_only_loss=False,
    )
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    timer = StepTimer()
    trainer = trl.SFTTrainer(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[timer],
    )
    tokens = []
    original = trainer.compute_loss

    def counting(model, inputs, *args, **kwargs):
        tokens.append(int(inputs["attention_mask"].sum()))
        return original(model, inputs, *args, **kwargs)

    trainer.compute_loss = counting
    trainer.train()
    return sum(tokens[1:]) / sum(timer.times[1:])


def grpo_split(out: Path, new_tokens: int, lora: bool) -> dict[str, float]:
    rows = [
        {
            "prompt": [{"role": "user", "content": f"What is {a} + {a + 7}? End with #### <number>."}],
            "reference": str(2 * a + 7),
        }
        for a in range(11, 30)
    ]
    data = write_jsonl(out / "prompts.jsonl", rows)
    options = {"lora_rank": LORA["rank"], "lora_alpha": LORA["alpha"], "save_merged": False} if lora else {}
    result = train(
        "grpo",
        data=str(data),
        output_dir=str(out / "run"),
        max_steps=3,
        batch_size=2,
        num_generations=4,
        max_new_tokens=new_tokens,
        verifiers={"math_answer": 1.0},
        kv_cache_memory="256MiB",
        micro_batch_size=8,
        max_length=256,
        progress=False,
        **options,
    )
    timed = read_metrics(result.output_dir)[1:]
    keys = ("rollout_time", "scoring_time", "logprob_time", "update_time", "step_time", "completion_length")
    return {k: statistics.fmean(r[k] for r in timed) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="timed steps (one more runs as warm-up)")
    parser.add_argument("--out", default="runs/bench-train")
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--skip-grpo", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    data = write_jsonl(out / "sft.jsonl", records(args.records))
    console = Console()
    summary: dict = {"command": command_line()}

    speeds: dict[str, dict[str, float]] = {"full": {}, "lora": {}}
    hf_dir = out / "hf-model"
    if not args.skip_trl:
        save_pretrained(load_pretrained(), hf_dir)
    for mode in ("full", "lora"):
        speeds[mode]["llmkit"] = llmkit_sft(data, out / f"llmkit-{mode}", args.steps, mode == "lora")
        if not args.skip_trl:
            speeds[mode]["trl"] = trl_sft(data, hf_dir, out / f"trl-{mode}", args.steps, mode == "lora")
    table = Table(title="SFT tokens/s, SmolLM2-135M float32, batch 4")
    table.add_column("mode")
    table.add_column("llmkit", justify="right")
    table.add_column("TRL SFTTrainer", justify="right")
    table.add_column("llmkit / TRL", justify="right")
    for mode, row in speeds.items():
        trl_speed = row.get("trl")
        ratio = f"{row['llmkit'] / trl_speed:.2f}x" if trl_speed else "-"
        table.add_row(mode, f"{row['llmkit']:.1f}", f"{trl_speed:.1f}" if trl_speed else "-", ratio)
    console.print(table)
    summary["sft_tokens_per_s"] = speeds

    if not args.skip_grpo:
        regimes = {
            "generation-heavy (96 new tokens, LoRA)": grpo_split(out / "grpo-gen", 96, lora=True),
            "update-heavy (12 new tokens, full weights)": grpo_split(out / "grpo-upd", 12, lora=False),
        }
        table = Table(title="GRPO step time split (seconds, mean of steps 2-3; 2 prompts x 4 completions)")
        for column in ("regime", "rollout", "scoring", "logprobs", "update", "step", "rollout share"):
            table.add_column(column, justify="right" if column != "regime" else "left")
        for name, split in regimes.items():
            share = split["rollout_time"] / split["step_time"]
            table.add_row(
                name,
                *(
                    f"{split[k]:.1f}"
                    for k in ("rollout_time", "scoring_time", "logprob_time", "update_time", "step_time")
                ),
                f"{share:.0%}",
            )
        console.print(table)
        summary["grpo_step_split"] = regimes
    save_summary("speed", summary)


if __name__ == "__main__":
    main()
