"""Prompt variants as paired comparisons on a scripted backend whose right answers depend on the prompt, so the
flipped items are known in advance."""

from __future__ import annotations

import json
import re

import pytest

from llmkit.core.cli import main
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.eval.client import ModelClient
from llmkit.eval.data import Dataset, Sample
from llmkit.eval.errors import EvalError
from llmkit.eval.prompting import PromptFormat
from llmkit.eval.scoring.scorers import MatchScorer
from llmkit.eval.solvers import Generate
from llmkit.eval.tasks import Task
from llmkit.eval.variants import PromptVariant, evaluate_variants, load_variants, parse_variants

RIGHT_PLAIN = {0, 1, 2}  # items the scripted model gets right with the plain prompt
RIGHT_STEP_BY_STEP = {1, 2, 3, 4}  # ... and when asked to think step by step
RIGHT_TERSE_WORDING = {0, 1, 2, 5}  # ... and with the "Compute" instruction


def scripted_reply(prompt: str) -> str:
    """Answers item i of the last question in the prompt right (i + 1) or wrong (i + 2) by the prompt's wording."""
    i = int(re.findall(r"item (\d+)", prompt)[-1])
    right = (
        RIGHT_STEP_BY_STEP if "step by step" in prompt else RIGHT_TERSE_WORDING if "Compute" in prompt else RIGHT_PLAIN
    )
    return str(i + 1 if i in right else i + 2)


def _task() -> Task:
    samples = [Sample(f"item{i}", {"question": f"item {i}: what is {i} + 1?"}, str(i + 1)) for i in range(6)]
    return Task(
        "toy_add",
        lambda: Dataset("toy_add", samples, {"source": "test"}),
        PromptFormat(template="{{ question }}"),
        Generate(max_tokens=4),
        MatchScorer(),
        primary_metric="exact_match",
    )


def test_each_variant_against_the_baseline_lists_exactly_the_flipped_items(tmp_path, scripted):
    variants = parse_variants(
        {
            "plain": {},
            "cot": {"chain_of_thought": "Let's think step by step."},
            "terse": {"template": "Compute {{ question }}"},
        }
    )
    client = ModelClient(scripted(scripted_reply), "scripted", None)
    report = evaluate_variants(_task(), variants, client, tmp_path / "out")

    assert report["baseline"] == "plain"
    assert report["variants"]["plain"]["estimate"]["value"] == pytest.approx(3 / 6)
    assert report["variants"]["cot"]["estimate"]["value"] == pytest.approx(4 / 6)
    cot = report["comparisons"]["cot"]
    assert [f["id"] for f in cot["improvements"]] == ["item3", "item4"]
    assert [f["id"] for f in cot["regressions"]] == ["item0"]
    assert cot["n"] == 6 and cot["difference"]["value"] == pytest.approx(1 / 6)
    assert (cot["mcnemar"]["b"], cot["mcnemar"]["c"]) == (1, 2)
    flip = cot["improvements"][0]  # a flipped item carries both prompts
    assert "step by step" in flip["prompt_b"] and "step by step" not in flip["prompt"]
    terse = report["comparisons"]["terse"]
    assert [f["id"] for f in terse["improvements"]] == ["item5"] and terse["regressions"] == []

    written = json.loads((tmp_path / "out" / "variants.json").read_text())
    assert written["comparisons"]["cot"]["regressions"][0]["id"] == "item0"
    markdown = (tmp_path / "out" / "variants.md").read_text()
    assert "## cot vs plain" in markdown and "### toy_add: regressions (1)" in markdown and "| item0 |" in markdown
    run = json.loads((tmp_path / "out" / "cot" / "results.json").read_text())
    assert run["run"]["variant"] == "cot" and run["tasks"]["toy_add"]["prompt"]["chain_of_thought"]


def test_bad_variants_are_clear_errors(tmp_path):
    with pytest.raises(EvalError, match="at least two variants"):
        parse_variants({"only": {}})
    with pytest.raises(EvalError, match=r"unknown prompt field\(s\) \['chain_of_thougth'\]"):
        parse_variants({"a": {}, "b": {"chain_of_thougth": "x"}})
    with pytest.raises(EvalError, match="names a directory"):
        PromptVariant("../up", {})
    with pytest.raises(EvalError, match="repeat"):
        parse_variants([{"name": "a"}, {"name": "a"}])
    bad = tmp_path / "v.yaml"
    bad.write_text("a: {}\nb: 3\n")
    with pytest.raises(EvalError, match="v.yaml: variant 'b': expected a mapping"):
        load_variants(bad)


class _ScriptedBackendPlugin:
    def __init__(self, backend_class):
        self.backend_class = backend_class

    @hookimpl
    def llmkit_register_backends(self, register):
        register("test_variants_scripted", lambda model=None, **options: self.backend_class(scripted_reply))


def test_the_cli_runs_variants_and_names_the_flips(tmp_path, scripted, capsys):
    rows = [{"id": f"item{i}", "question": f"item {i}: what is {i} + 1?", "answer": str(i + 1)} for i in range(6)]
    (tmp_path / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "toy.yaml").write_text(
        "name: toy_add\ndataset: {source: file, path: toy.jsonl, id: id, target: answer}\n"
        "prompt: {template: '{{ question }}'}\nsolver: {type: generate, max_tokens: 4}\nscorer: {type: match}\n"
    )
    (tmp_path / "variants.yaml").write_text("plain: {}\ncot: {chain_of_thought: Let's think step by step.}\n")
    register_plugin(_ScriptedBackendPlugin(scripted), "test-variants-backend")
    try:
        code = main(
            [
                "eval", "variants", str(tmp_path / "toy.yaml"), "--variants", str(tmp_path / "variants.yaml"),
                "--backend", "test_variants_scripted", "--output", str(tmp_path / "out"), "--no-cache",
            ]
        )  # fmt: skip
    finally:
        unregister_plugin("test-variants-backend")
    assert code == 0
    out = capsys.readouterr().out
    assert "cot + (improvements): item3, item4" in out and "cot − (regressions): item0" in out
    assert (tmp_path / "out" / "plain" / "results.json").is_file() and (tmp_path / "out" / "variants.md").is_file()
