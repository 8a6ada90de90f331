"""Running tasks end to end on a tiny real model: scoring path, cache and resume, YAML tasks, compare, reports."""

from __future__ import annotations

import json

import pytest

from llmkit.eval.cache import ResponseCache
from llmkit.eval.catalog import builtin_registry
from llmkit.eval.client import ModelClient
from llmkit.eval.compare import compare_runs, regression_markdown
from llmkit.eval.data import Dataset, Sample
from llmkit.eval.local_scoring import local_loglikelihood
from llmkit.eval.prompting import PromptFormat
from llmkit.eval.results import load_results, load_samples
from llmkit.eval.runner import RunOptions, run_tasks
from llmkit.eval.scoring.scorers import ChoiceScorer, MatchScorer
from llmkit.eval.solvers import Generate, MultipleChoice
from llmkit.eval.tasks import Task, task_from_yaml

QUESTIONS = [
    ("The quick brown", ("fox", "dog", "cat jumps"), 0),
    ("1 + 1 =", ("2", "3"), 0),
    ("What is the capital of France? The capital of France is", ("Paris", "Rome", "a city"), 0),
    ("def reverse(s):\n    return", ("s[::-1]", "s"), 0),
]


def _mc_dataset() -> Dataset:
    samples = [Sample(f"q{i}", {"question": q}, t, c) for i, (q, c, t) in enumerate(QUESTIONS)]
    return Dataset("toy_mc", samples, {"source": "test"})


def _mc_task() -> Task:
    return Task("toy_mc", _mc_dataset, PromptFormat(), MultipleChoice(), ChoiceScorer())


def test_batched_local_scoring_equals_the_reference_backend(tiny_backend):
    requests = [(q, " " + c) for q, choices, _ in QUESTIONS for c in choices] + [("", "Paris"), ("Paris", " is")]
    fast = local_loglikelihood(tiny_backend.pretrained, requests, max_batch_tokens=64)
    reference = tiny_backend.loglikelihood(requests)
    for got, want in zip(fast, reference, strict=True):
        assert got.logprob == pytest.approx(want.logprob, abs=1e-4)
        assert (got.is_greedy, got.num_tokens) == (want.is_greedy, want.num_tokens)


def test_multiple_choice_run_matches_hand_scoring_and_resumes_from_cache(tmp_path, tiny_backend):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    client = ModelClient(tiny_backend, "tiny", cache)
    results = run_tasks(
        [_mc_task()], client, tmp_path / "run1", {"model": "tiny"}, RunOptions(quiet=True, chunk_size=3)
    )
    expected = []
    for question, choices, target in QUESTIONS:
        lls = [r.logprob for r in tiny_backend.loglikelihood([(question, " " + c) for c in choices])]
        expected.append(float(max(range(len(lls)), key=lambda i: (lls[i], -i)) == target))
    metrics = results["tasks"]["toy_mc"]["metrics"]
    assert metrics["acc"]["value"] == pytest.approx(sum(expected) / len(expected)) and metrics["acc"]["n"] == 4
    assert metrics["acc"]["ci_low"] <= metrics["acc"]["value"] <= metrics["acc"]["ci_high"]
    assert len(cache) == sum(len(c) for _, c, _ in QUESTIONS)
    assert [r["id"] for r in load_samples(tmp_path / "run1", "toy_mc")] == ["q0", "q1", "q2", "q3"]

    resumed = ModelClient(tiny_backend, "tiny", cache)
    again = run_tasks([_mc_task()], resumed, tmp_path / "run2", {"model": "tiny"}, RunOptions(quiet=True))
    assert resumed.usage.cached == resumed.usage.requests == len(cache)
    assert again["tasks"]["toy_mc"]["metrics"] == metrics


def test_generation_run_with_scripted_model_and_regression_report(tmp_path, scripted):
    samples = [Sample(f"s{i}", {"question": f"What is {i} + {i}?"}, str(2 * i)) for i in range(6)]
    task = Task(
        "adding",
        lambda: Dataset("adding", samples, {"source": "test"}),
        PromptFormat(),
        Generate(max_tokens=8),
        MatchScorer("last_number", "number"),
        primary_metric="exact_match",
    )

    def good(prompt):
        i = int(prompt.split()[2])
        return f"The answer is {2 * i}"

    def worse(prompt):
        i = int(prompt.split()[2])
        return f"The answer is {2 * i + (1 if i in (1, 4) else 0)}"

    run_tasks([task], ModelClient(scripted(good), "good"), tmp_path / "a", {"model": "good"}, RunOptions(quiet=True))
    run_tasks([task], ModelClient(scripted(worse), "worse"), tmp_path / "b", {"model": "worse"}, RunOptions(quiet=True))
    comparison = compare_runs(tmp_path / "a", tmp_path / "b")
    adding = comparison["tasks"]["adding"]
    assert adding["a"]["value"] == 1.0 and adding["b"]["value"] == pytest.approx(4 / 6)
    assert [r["id"] for r in adding["regressions"]] == ["s1", "s4"] and adding["improvements"] == []
    assert (adding["mcnemar"]["b"], adding["mcnemar"]["c"]) == (2, 0) and adding["mcnemar"]["exact_p"] == pytest.approx(
        0.5
    )
    assert adding["difference"]["value"] == pytest.approx(-2 / 6)
    markdown = regression_markdown(comparison)
    assert "## adding: regressions (2)" in markdown and "| s1 |" in markdown and "| s4 |" in markdown


def test_yaml_task_file(tmp_path, scripted):
    (tmp_path / "data.jsonl").write_text(
        "\n".join(json.dumps({"key": f"k{i}", "q": f"Say {i}", "a": str(i)}) for i in range(3)) + "\n"
    )
    (tmp_path / "task.yaml").write_text(
        "name: say\n"
        "dataset: {source: file, path: data.jsonl, id: key, target: a}\n"
        'prompt: {template: "Q: {{ q }}\\nA:", fewshot: 1, fewshot_sampler: first}\n'
        'solver: {type: generate, max_tokens: 4, stop: ["\\n"]}\n'
        "scorer: {type: match, extract: last_number, normalize: number}\n"
    )
    task = task_from_yaml(tmp_path / "task.yaml", builtin_registry())
    assert (
        task.prompt.raw(_sample := task.dataset().samples[1], task.dataset().samples)
        == "Q: Say 0\nA: 0\n\nQ: Say 1\nA:"
    )
    assert _sample.id == "k1"
    results = run_tasks(
        [task],
        ModelClient(scripted(lambda p: p.split("Say ")[-1].split("\n")[0]), "echo"),
        tmp_path / "run",
        {},
        RunOptions(quiet=True),
    )
    assert results["tasks"]["say"]["metrics"]["exact_match"]["value"] == 1.0


def test_bad_yaml_task_names_the_section(tmp_path):
    from llmkit.eval.errors import EvalError

    (tmp_path / "t.yaml").write_text("dataset: {source: file, path: x.jsonl}\nsolver: {type: nonsense}\n")
    with pytest.raises(EvalError, match="solver: unknown type 'nonsense'"):
        task_from_yaml(tmp_path / "t.yaml", builtin_registry())


def test_results_record_dataset_provenance(tmp_path, tiny_backend):
    run_tasks(
        [_mc_task()], ModelClient(tiny_backend, "tiny"), tmp_path / "r", {"model": "tiny"}, RunOptions(quiet=True)
    )
    results = load_results(tmp_path / "r")
    assert (
        results["tasks"]["toy_mc"]["dataset"] == {"source": "test", "shuffled": False} and results["run"]["finished_at"]
    )


def test_shuffled_limit_is_a_seeded_uniform_subsample(tmp_path, scripted):
    samples = [Sample(f"s{i:02d}", {"question": str(i)}, str(i)) for i in range(40)]
    task = Task(
        "echo",
        lambda: Dataset("echo", samples, {"source": "test"}),
        PromptFormat(),
        Generate(max_tokens=2),
        MatchScorer(),
    )
    client = ModelClient(scripted(lambda p: p), "echo")
    first = run_tasks([task], client, tmp_path / "a", {}, RunOptions(limit=10, shuffle=True, seed=3, quiet=True))
    ids = [r["id"] for r in load_samples(tmp_path / "a", "echo")]
    run_tasks([task], client, tmp_path / "b", {}, RunOptions(limit=10, shuffle=True, seed=3, quiet=True))
    assert [r["id"] for r in load_samples(tmp_path / "b", "echo")] == ids and len(set(ids)) == 10
    assert ids != [s.id for s in samples[:10]] and first["tasks"]["echo"]["dataset"]["limit"] == 10
