"""The HTML report: self-contained, and its plots render in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from llmkit.eval.client import ModelClient
from llmkit.eval.data import Dataset, Sample
from llmkit.eval.judge import PairItem, PairwiseJudge, length_bias, summarize_pairwise
from llmkit.eval.probes import PROBE_TASKS, lost_in_the_middle
from llmkit.eval.prompting import PromptFormat
from llmkit.eval.report import render_report, write_report
from llmkit.eval.runner import RunOptions, run_tasks
from llmkit.eval.scoring.scorers import SelfConsistencyScorer
from llmkit.eval.solvers import SelfConsistency
from llmkit.eval.tasks.task import Curve, Task


def _noisy_adder(prompt: str) -> str:
    """Right three times in four, by a hash of the prompt and the call count."""
    _noisy_adder.calls = getattr(_noisy_adder, "calls", 0) + 1
    number = int(prompt.split("What is ")[-1].split(" ")[0])
    return f"The answer is {2 * number + (1 if _noisy_adder.calls % 4 == 0 else 0)}."


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, scripted):
    ScriptedBackend = scripted
    out = tmp_path_factory.mktemp("run")
    samples = [Sample(f"s{i}", {"question": f"What is {i} plus {i}?"}, str(2 * i)) for i in range(8)]
    sc_task = Task(
        "adding_sc",
        lambda: Dataset("adding", samples, {"source": "test"}),
        PromptFormat(),
        SelfConsistency(samples=4, temperature=0.7, max_tokens=16),
        SelfConsistencyScorer(curve=(1, 2, 4)),
        curves={"self_consistency": Curve("acc@", "samples voted (N)", "accuracy")},
    )
    needle = PROBE_TASKS["lost_in_the_middle"]()
    needle.dataset = lambda: lost_in_the_middle(facts=2, sentences=6)

    def recall_edges(prompt: str) -> str:
        if "Question:" in prompt:
            body = prompt.split("\n\n")[1]
            code = re.search(r"is (\d{4})\.", body).group(1)
            return code if body.startswith("The secret") or body.rstrip().endswith(f"{code}.") else "I am not sure."
        return _noisy_adder(prompt)

    run_tasks(
        [sc_task, needle],
        ModelClient(ScriptedBackend(recall_edges), "scripted"),
        out,
        {"model": "scripted", "backend": "scripted"},
        RunOptions(quiet=True),
    )
    items = [PairItem(str(i), f"q{i}", "short", "a much longer answer") for i in range(4)]
    judgments = PairwiseJudge(ModelClient(ScriptedBackend(lambda p: "A"), "always-a")).judge(items)
    judge = {
        "run_a": "a", "run_b": "b", "task": "adding_sc",
        "judges": {"always-a": {"pairwise": summarize_pairwise(judgments), "length_bias": length_bias([j.winner for j in judgments], [5] * 4, [20] * 4)}},
    }  # fmt: skip
    (out / "judge.json").write_text(json.dumps(judge))
    return out


def test_report_embeds_every_plot_and_fetches_nothing(run_dir):
    html = render_report(run_dir)
    for figure in ("primary-metrics", "adding_sc-self_consistency", "lost_in_the_middle-position", "judge-flip-rates"):
        assert f'id="{figure}"' in html
    assert html.count('src="data:image/png;base64,') == 4
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "flip rate" in html and "lost_in_the_middle" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("LLMKIT_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (LLMKIT_REQUIRE_CHROMIUM is set) but not installed")
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    report = write_report(run_dir, tmp_path / "report.html")
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000", "--dump-dom", report.as_uri(),
    ]  # fmt: skip
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    assert 'data-report-ready="yes"' in dom
    images = re.findall(r"<img [^>]*>", dom)
    assert len(images) == 4 and all('data-loaded="yes"' in img for img in images)
