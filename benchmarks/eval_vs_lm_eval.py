"""llmkit-eval against lm-evaluation-harness on the same multiple-choice items, same model, same prompts.

Usage (lm-eval lives in its own venv; it is not a dependency of llmkit):

    python3.11 -m venv /tmp/lmeval-venv && /tmp/lmeval-venv/bin/pip install torch==2.13.0 lm-eval transformers accelerate gguf
    python benchmarks/eval_vs_lm_eval.py --task hellaswag --lm-eval-python /tmp/lmeval-venv/bin/python

Our side runs the task through `llmkit.eval` (reference backend: the GGUF dequantized by llmkit's
loader). The other side is lm-eval's `hf` model on the same GGUF, loaded and dequantized by
transformers (`gguf_file=`), fed the very same contexts and choices through a generated task
YAML over a local JSONL file. Both accuracies are printed with 95% bootstrap CIs, plus the
paired difference, item agreement and McNemar's test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from llmkit.core.models.store import DEFAULT_MODEL, pull
from llmkit.eval.cache import ResponseCache
from llmkit.eval.catalog import builtin_task
from llmkit.eval.cli.models import open_model
from llmkit.eval.client import ModelClient
from llmkit.eval.runner import RunOptions, run_tasks
from llmkit.eval.stats import bootstrap, mcnemar, paired_bootstrap

LM_EVAL_SIDE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import lm_eval
    from lm_eval.tasks import TaskManager
    task_dir, gguf, out, batch_size = sys.argv[1:5]
    gguf = Path(gguf)  # transformers dequantizes the GGUF to float32 at load (gguf_file=)
    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={gguf.parent},gguf_file={gguf.name},dtype=float32", tasks=["llmkit_parity"],
        task_manager=TaskManager(include_path=task_dir), batch_size=int(batch_size), device="cpu", log_samples=True,
    )
    rows = [{"id": s["doc"]["id"], "acc": s["acc"], "acc_norm": s["acc_norm"]} for s in results["samples"]["llmkit_parity"]]
    Path(out).write_text(json.dumps({"version": lm_eval.__version__, "rows": rows}))
    """
)

TASK_YAML = """task: llmkit_parity
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def ours(task_name: str, limit: int | None, gguf: Path, output: Path) -> tuple[dict[str, dict], list[dict]]:
    """Per-item acc/acc_norm from llmkit-eval, and the exact contexts and choices it scored."""
    task = builtin_task(task_name)
    backend, identity = open_model("reference", DEFAULT_MODEL, {})  # the CLI's identity: its cached answers are reused
    client = ModelClient(backend, identity, ResponseCache())
    run_tasks([task], client, output, {"model": str(gguf), "backend": "reference"}, RunOptions(limit=limit, quiet=True))
    dataset = task.dataset().head(limit)
    pool = dataset.fewshot_pool or dataset.samples
    docs = [
        {"id": s.id, "context": task.prompt.raw(s, pool), "choices": list(s.choices), "gold": s.target}
        for s in dataset.samples
    ]
    rows = {}
    for line in (output / "samples" / f"{task_name}.jsonl").read_text().splitlines():
        record = json.loads(line)
        rows[record["id"]] = record["metrics"]
    return rows, docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--task", default="hellaswag", help="a multiple-choice built-in task (hellaswag, truthfulqa_mc1, mmlu)"
    )
    parser.add_argument("--limit", type=int, help="first N items")
    parser.add_argument("--lm-eval-python", default=sys.executable, help="a Python with lm-eval installed")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "llmkit-lm-eval-parity"))
    args = parser.parse_args()

    gguf = pull(quiet=True).path
    work = Path(args.workdir) / args.task
    work.mkdir(parents=True, exist_ok=True)
    ours_rows, docs = ours(args.task, args.limit, gguf, work / "llmkit-run")
    (work / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (work / "tasks").mkdir(exist_ok=True)
    (work / "tasks" / "llmkit_parity.yaml").write_text(TASK_YAML.format(data=work / "docs.jsonl"))
    command = [
        args.lm_eval_python,
        "-c",
        LM_EVAL_SIDE,
        str(work / "tasks"),
        str(gguf),
        str(work / "lm_eval.json"),
        str(args.batch_size),
    ]
    subprocess.run(
        command,
        check=True,
        env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    theirs = json.loads((work / "lm_eval.json").read_text())
    their_rows = {r["id"]: r for r in theirs["rows"]}
    ids = [d["id"] for d in docs if d["id"] in their_rows]
    print(f"task {args.task}: {len(ids)} items, model {gguf.name}, lm-eval {theirs['version']}")
    print(
        f"{'metric':<9} {'llmkit-eval':>28} {'lm-evaluation-harness':>28} {'difference (paired)':>30} {'agree':>6} {'McNemar p':>9}"
    )
    for metric in ("acc", "acc_norm"):
        a = [float(ours_rows[i][metric]) for i in ids]
        b = [float(their_rows[i][metric]) for i in ids]
        est_a, est_b, diff = bootstrap(a), bootstrap(b), paired_bootstrap(a, b)
        agree = sum(x == y for x, y in zip(a, b, strict=True)) / len(ids)
        test = mcnemar([x == 1 for x in a], [y == 1 for y in b])
        cell = "{:.4f} [{:.4f}, {:.4f}]"
        print(
            f"{metric:<9} {cell.format(est_a.value, est_a.low, est_a.high):>28} {cell.format(est_b.value, est_b.low, est_b.high):>28} "
            f"{f'{diff.value:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]':>30} {agree:>6.3f} {test.exact_p:>9.3f}"
        )


if __name__ == "__main__":
    main()
