"""lm-evaluation-harness, unchanged, against a real `llmkit serve` on loopback (run by the nox session
`client_lm_eval`, which installs lm-eval): `local-completions` on a multiple-choice task (prompt
log-likelihoods through echo + logprobs) and `local-chat-completions` on a generate-until task, both
defined from local files, give the same metrics and the same per-item numbers as `llmkit eval run`
on the same items in process. No hub access: the datasets are JSONL files read by `datasets`' json
builder, the tokenizer is the tiny model's directory."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("lm_eval", reason="lm-eval is installed by the nox session client_lm_eval")

from served import BIN, llmkit_serve

from llmkit.core.testing import write_tiny_model

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

MC_ITEMS = [
    ("What is the capital of France?", ["Paris", "London", "Rome"], 0),
    ("Which number is even?", ["7", "12", "3"], 1),
    ("What does a fox do?", ["jumps over the lazy dog", "sleeps", "swims"], 0),
    ("Which word is a colour?", ["table", "green", "run"], 1),
    ("1 + 1 =", ["2", "3", "11"], 0),
    ("What is the opposite of true?", ["maybe", "true", "false"], 2),
]
GEN_QUESTIONS = ["What is the capital of France?", "Say hello.", "Count to three.", "Name a colour.", "1 + 1 ="]
GEN_TOKENS = 6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """`llmkit serve` (the tiny model) on loopback; (base url, served model name)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = ("--model", str(model_dir), "--kv-cache-memory", "64MiB")
    with llmkit_serve(*args, log=log, env=OFFLINE, timeout=120) as served:
        yield served


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def lm_eval_run(tmp: Path, model: str, model_args: dict, task: str, *extra: str) -> tuple[dict, list[dict]]:
    """`lm-eval run` as a user types it; (the task's results, its logged samples)."""
    output = tmp / f"lm-eval-{task}"
    args = ",".join(f"{k}={v}" for k, v in model_args.items())
    command = [BIN / "lm-eval", "run", "--model", model, "--model_args", args, "--tasks", task]
    command += ["--include_path", str(tmp), "--output_path", str(output), "--log_samples", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (results_file,) = output.rglob("results_*.json")
    (samples_file,) = output.rglob(f"samples_{task}_*.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines() if line.strip()]
    return json.loads(results_file.read_text())["results"][task], sorted(samples, key=lambda s: s["doc_id"])


@pytest.fixture(scope="module")
def llmkit_eval(model_dir):
    """What `llmkit eval run TASK.yaml --model DIR` runs, in this process (the model loaded once) on the reference
    backend; a function of (task file, run directory) -> (metrics, samples in item order)."""
    from llmkit.core.backends import open_backend
    from llmkit.eval import ModelClient, RunOptions, load_task, run_tasks

    client = ModelClient(open_backend("reference", model=str(model_dir)), str(model_dir))

    def run(task_file: Path, output: Path) -> tuple[dict, list[dict]]:
        task = load_task(str(task_file))
        results = run_tasks([task], client, output, {"model": str(model_dir)}, RunOptions(quiet=True))
        lines = (output / "samples" / f"{task.name}.jsonl").read_text().splitlines()
        samples = sorted((json.loads(line) for line in lines), key=lambda s: int(s["id"]))
        return results["tasks"][task.name]["metrics"], samples

    return run


def test_local_completions_multiple_choice_equals_llmkit_eval(server, model_dir, llmkit_eval, tmp_path):
    url, name = server
    data = write_jsonl(
        tmp_path / "mc.jsonl",
        [{"id": i, "question": q, "choices": c, "gold": g} for i, (q, c, g) in enumerate(MC_ITEMS)],
    )
    (tmp_path / "tiny_mc.yaml").write_text(
        "task: tiny_mc\n"
        "dataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {data}}}}}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "Q: {{question}}\\nA:"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{gold}}"\n'
        "metric_list: [{metric: acc}, {metric: acc_norm}]\n"
    )
    mine = tmp_path / "llmkit_mc.yaml"
    mine.write_text(
        f"dataset: {{source: file, path: {data}, id: id, target: gold, choices: choices}}\n"
        'prompt: {template: "Q: {{ question }}\\nA:"}\n'
        "solver: {type: multiple_choice}\n"
    )
    model_args = {
        "model": name,
        "base_url": f"{url}/v1/completions",
        "tokenizer_backend": "huggingface",
        "tokenizer": model_dir,
        "num_concurrent": 1,
        "max_retries": 1,
        "max_length": 256,
    }
    theirs, their_samples = lm_eval_run(tmp_path, "local-completions", model_args, "tiny_mc")
    metrics, my_samples = llmkit_eval(mine, tmp_path / "llmkit-mc")

    assert len(their_samples) == len(my_samples) == len(MC_ITEMS)
    for their, my in zip(their_samples, my_samples, strict=True):
        their_lls = [float(ll) for ll, _greedy in their["filtered_resps"]]  # logged as strings
        my_lls = my["response"]["loglikelihoods"]
        assert their_lls == pytest.approx(my_lls, abs=1e-4), (their["doc_id"], their_lls, my_lls)
    assert theirs["acc,none"] == metrics["acc"]["value"]
    assert theirs["acc_norm,none"] == metrics["acc_norm"]["value"]


def test_local_chat_completions_generate_until_equals_llmkit_eval(server, llmkit_eval, tmp_path):
    """The tiny random model answers nonsense, so the targets of every other item are its own greedy replies
    from `llmkit eval run` in process: exact match is then 3/5 only if lm-eval through the server gets the same
    replies, and each reply is compared too. llmkit's chat replies are the parsed message content, which
    drops surrounding whitespace; the server returns the content as generated (as OpenAI does), so both
    sides compare replies stripped (lm-eval through `regexes_to_ignore`)."""
    url, name = server
    records = [{"id": i, "question": q, "answer": "unreachable"} for i, q in enumerate(GEN_QUESTIONS)]
    data = write_jsonl(tmp_path / "gen.jsonl", records)
    mine = tmp_path / "llmkit_gen.yaml"
    mine.write_text(
        f"dataset: {{source: file, path: {data}, id: id, target: answer}}\n"
        'prompt: {template: "{{ question }}", chat: true}\n'
        f"solver: {{type: generate, max_tokens: {GEN_TOKENS}, stop: ['\\n'], temperature: 0}}\n"
        "scorer: {type: match, extract: none, normalize: exact}\n"
    )
    _, first = llmkit_eval(mine, tmp_path / "llmkit-gen-1")
    replies = [s["response"]["completions"][0] for s in first]
    for i, record in enumerate(records):
        if i % 2 == 0:
            record["answer"] = replies[i]
    write_jsonl(data, records)
    metrics, my_samples = llmkit_eval(mine, tmp_path / "llmkit-gen-2")
    assert metrics["exact_match"]["value"] == pytest.approx(3 / 5)

    (tmp_path / "tiny_gen.yaml").write_text(
        "task: tiny_gen\n"
        "dataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {data}}}}}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_target: "{{answer}}"\n'
        f"generation_kwargs: {{until: ['\\n'], max_gen_toks: {GEN_TOKENS}, do_sample: false, temperature: 0}}\n"
        "metric_list: [{metric: exact_match, regexes_to_ignore: ['^\\s+', '\\s+$']}]\n"
    )
    model_args = {"model": name, "base_url": f"{url}/v1/chat/completions", "num_concurrent": 1, "max_retries": 1}
    theirs, their_samples = lm_eval_run(
        tmp_path, "local-chat-completions", model_args, "tiny_gen", "--apply_chat_template"
    )
    their_replies = [s["filtered_resps"][0].strip() for s in their_samples]
    assert their_replies == [s["response"]["completions"][0] for s in my_samples]
    assert theirs["exact_match,none"] == pytest.approx(metrics["exact_match"]["value"])
