"""ACE playbooks: delta operations only, near-duplicate merging, guards against wholesale rewrites, persistence."""

from __future__ import annotations

import json

import pytest

from llmkit.context import ContextError, PromptedJSON
from llmkit.context.playbook import (
    AddBullet,
    Bullet,
    BulletTag,
    Curator,
    Generator,
    Playbook,
    PlaybookDelta,
    RefineBullet,
    Reflector,
    RetireBullet,
    ace_step,
)


def seeded() -> Playbook:
    return Playbook(
        [
            Bullet("b-1", "strategies", "Check the units before answering."),
            Bullet("b-2", "pitfalls", "Round only at the end of a calculation."),
            Bullet("b-3", "checks", "Re-read the question before the final answer."),
        ]
    )


def test_deltas_add_refine_and_retire_without_touching_other_bullets():
    playbook = seeded()
    report = playbook.apply(
        PlaybookDelta(
            operations=[
                AddBullet(op="add", section="formulas", text="Area of a circle is pi r squared."),
                RefineBullet(op="refine", bullet_id="b-2", text="Round only once, at the end."),
                RetireBullet(op="retire", bullet_id="b-3", reason="never helped"),
                RefineBullet(op="refine", bullet_id="b-9", text="x"),
            ]
        )
    )
    assert report.added == ["b-4"] and report.refined == ["b-2"] and report.retired == ["b-3"]
    assert report.rejected == ["refine b-9: no such active bullet"]
    assert playbook.find("b-2").history == ["Round only at the end of a calculation."]
    assert playbook.find("b-1").text == "Check the units before answering."
    assert "b-3" not in playbook.render() and "[b-4]" in playbook.render()


def test_near_identical_bullets_are_merged_not_added():
    playbook = seeded()
    report = playbook.apply(
        PlaybookDelta(operations=[AddBullet(op="add", section="s", text="Check the units before answering!")])
    )
    assert report.added == [] and report.merged == [("Check the units before answering!", "b-1")]
    playbook.bullets.append(Bullet("b-4", "s", "Re-read the question before the final answer", helpful=2))
    playbook.find("b-3").helpful = 1
    assert playbook.dedup() == [("b-4", "b-3")]
    assert playbook.find("b-3").helpful == 3 and playbook.find("b-4").retired == "duplicate of b-3"


def test_a_wholesale_rewrite_is_refused():
    playbook = seeded()
    retire_all = PlaybookDelta(
        operations=[RetireBullet(op="retire", bullet_id=f"b-{i}", reason="rewrite") for i in (1, 2, 3)]
    )
    report = playbook.apply(retire_all)
    assert "wholesale rewrite, refused" in report.rejected[0] and len(playbook.active) == 3
    many = PlaybookDelta(
        operations=[AddBullet(op="add", section="s", text=f"new idea number {i} {'x' * i}") for i in range(9)]
    )
    assert "9 operations (limit 8)" in playbook.apply(many).rejected[0]


def test_counters_and_persistence(tmp_path):
    playbook = seeded()
    playbook.tag([BulletTag(bullet_id="b-1", tag="helpful"), BulletTag(bullet_id="b-2", tag="harmful"),
                  BulletTag(bullet_id="b-7", tag="helpful")])  # fmt: skip
    playbook.save(tmp_path / "playbook.json")
    loaded = Playbook.load(tmp_path / "playbook.json")
    assert (loaded.find("b-1").helpful, loaded.find("b-2").harmful) == (1, 1)
    assert "[b-1] helpful=1 harmful=0 :: Check the units" in loaded.render()
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(ContextError, match="not a playbook file"):
        Playbook.load(tmp_path / "bad.json")


def test_one_ace_step_generates_reflects_and_applies_a_delta(scripted):
    reflection = {"error_identification": "wrong units", "root_cause": "ignored b-2",
                  "key_insight": "Convert miles to kilometres before comparing distances.",
                  "bullet_tags": [{"bullet_id": "b-1", "tag": "helpful"}]}  # fmt: skip
    delta = {"operations": [{"op": "add", "section": "strategies", "text": reflection["key_insight"]}]}
    backend = scripted(["Using [b-1], the answer is 5 miles.", json.dumps(reflection), json.dumps(delta)])
    playbook = seeded()
    step = ace_step(
        "How far is 8 km in miles?",
        lambda reply: "expected about 5 miles; correct",
        playbook,
        Generator(backend),
        Reflector(PromptedJSON(backend)),
        Curator(PromptedJSON(backend)),
    )
    assert step.trajectory.cited == ["b-1"] and "# Playbook" in backend.conversations[0][0]["content"]
    assert step.report.added == ["b-4"] and playbook.find("b-1").helpful == 1
    assert "expected about 5 miles" in backend.conversations[1][-1]["content"]
