"""`llmkit data ...` end to end through the real CLI entry point, including its one-line errors."""

from __future__ import annotations

import json

import pytest

from llmkit.core.cli import main

from .corpus import build_corpus


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dedup_diff_verify_and_manifest(tmp_path, capsys):
    corpus = build_corpus(originals=150, exact=10, near=10, negatives=5, seed=1)
    source = _write(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(corpus.texts)])
    out, report = tmp_path / "out.jsonl", tmp_path / "report.jsonl"
    code, stdout, _ = _run(
        capsys, "data", "dedup", str(source), "-o", str(out), "--report", str(report), "--workers", "1", "--quiet"
    )
    summary = json.loads(stdout)
    assert code == 0 and summary["dropped"] == {"exact": 10, "near": 10, "semantic": 0}
    assert summary["kept"] == 155 and len(report.read_text().splitlines()) == 20

    code, stdout, _ = _run(capsys, "data", "diff", str(source), str(out))
    assert code == 0 and stdout.startswith("0 added, 20 removed, 0 changed, 155 unchanged")

    code, stdout, _ = _run(capsys, "data", "verify", str(out))
    assert code == 0 and "OK, 155 records" in stdout
    out.write_text(out.read_text().replace('"d0"', '"dX"'))
    code, _, stderr = _run(capsys, "data", "verify", str(out))
    assert code == 1 and "does not match its manifest" in stderr

    code, stdout, _ = _run(capsys, "data", "manifest", str(source))
    assert code == 0 and json.loads(stdout)["records"] == 175


def test_contamination_mix_agreement_and_bradley_terry(tmp_path, capsys):
    item = "what is the name of the river that flows through the city of paris in france today"
    eval_file = _write(
        tmp_path / "eval.jsonl",
        [
            {"id": "e1", "question": item},
            {
                "id": "e2",
                "question": "an unrelated question about the moon and its many craters seen from earth at night",
            },
        ],
    )
    train = _write(
        tmp_path / "train.jsonl", [{"text": f"Quiz. {item.upper()}? The Seine."}, {"text": "nothing to see"}]
    )
    code, stdout, _ = _run(
        capsys,
        "data",
        "contamination",
        "--train",
        str(train),
        "--eval",
        str(eval_file),
        "--report",
        str(tmp_path / "c.jsonl"),
        "--workers",
        "1",
        "--quiet",
    )
    assert code == 0 and json.loads(stdout)["sources"][str(eval_file)]["contaminated"] == 1

    code, stdout, _ = _run(
        capsys,
        "data",
        "mix",
        "--source",
        f"a={train}:3",
        "--source",
        f"b={eval_file}:1",
        "-o",
        str(tmp_path / "mix.jsonl"),
        "--total",
        "8",
    )
    assert code == 0 and [s["selected"] for s in json.loads(stdout)["sources"]] == [6, 2]

    rows = [{"item": i, "annotator": a, "label": (i + (a == "c")) % 3} for i in range(12) for a in "abc"]
    gold = _write(tmp_path / "gold.jsonl", [{"item": i, "label": i % 3} for i in range(6)])
    annotations = _write(tmp_path / "ann.jsonl", rows)
    code, stdout, _ = _run(capsys, "data", "agreement", str(annotations), "--gold", str(gold), "--min-honeypots", "3")
    report = json.loads(stdout)
    assert code == 0 and report["flagged_annotators"] == ["c"] and report["items"] == 6
    assert report["cohen_kappa"]["a|b"]["kappa"] == 1.0

    prefs = _write(
        tmp_path / "prefs.jsonl",
        [{"ranking": ["x", "y", "z"]}, {"winner": "y", "loser": "z"}, {"first": "x", "second": "z", "result": 0.5}],
    )
    code, stdout, _ = _run(capsys, "data", "bradley-terry", str(prefs))
    assert code == 0 and [r["item"] for r in json.loads(stdout)["ranking"]] == ["x", "y", "z"]


def test_critique_runs_on_a_real_backend(tmp_path, capsys):
    from llmkit.core.testing import write_tiny_model

    tiny_model_dir = write_tiny_model(tmp_path / "tiny", max_position_embeddings=1024)  # room for 5 turns
    prompts = _write(tmp_path / "prompts.jsonl", [{"prompt": "Say something."}])
    code, stdout, _ = _run(
        capsys,
        "data",
        "critique",
        str(prompts),
        "-o",
        str(tmp_path / "sft.jsonl"),
        "--trace",
        str(tmp_path / "t.jsonl"),
        "--model",
        str(tiny_model_dir),
        "--max-tokens",
        "4",
        "--quiet",
    )
    assert code == 0 and json.loads(stdout)["examples"] == 1
    trace = json.loads((tmp_path / "t.jsonl").read_text())
    assert trace["rounds"][0]["principle"] in {"harmless", "honest", "helpful"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["data", "dedup", "missing.jsonl", "-o", "o.jsonl", "--report", "r.jsonl", "--workers", "1", "--quiet"],
            "does not exist",
        ),
        (
            ["data", "dedup", "BAD", "-o", "o.jsonl", "--report", "r.jsonl", "--workers", "1", "--quiet"],
            ":2: not valid JSON",
        ),
        (
            ["data", "contamination", "--train", "BAD", "--eval", "no-such-dataset", "--report", "r.jsonl"],
            "no dataset named 'no-such-dataset'",
        ),
        (
            ["data", "dedup", "BAD", "-o", "o", "--report", "r", "--semantic", "--embedder", "word2vec"],
            "unknown embedder 'word2vec'",
        ),
        (["data", "mix", "--source", "a=BAD", "-o", "o.jsonl", "--temperature", "0"], "temperature must be > 0"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD").write_text('{"text": "fine"}\n{"text": broken\n')
    code, _, stderr = _run(capsys, *argv)
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert stderr.startswith("llmkit: error:")
