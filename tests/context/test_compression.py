"""History policies on constructed histories: what is kept, summarized, evicted, and why."""

from __future__ import annotations

from llmkit.context import CodeDedup, ContextWindow, SelectiveEviction, StateObject, ToolResultLifecycle
from llmkit.context.compression import HistoryView, salient_terms
from llmkit.context.compression.dedup import similarity, snippet_key


def decisions_by_turn(rendered):
    return {(d.turn, d.policy, d.action) for d in rendered.decisions}


def test_tool_result_lifecycle_verbatim_then_one_line_then_evicted(tiny_backend):
    window = ContextWindow(tiny_backend, budget=5000, policies=[ToolResultLifecycle(verbatim_turns=2, summary_turns=4)])
    for turn in range(1, 7):
        window.add_message("user", f"run step {turn}")
        window.add_tool_result("shell", f"exit 0 for step {turn}\n" + "log line\n" * 5)
    view = window.history_view()
    texts = {i.turn: view.text(i) for i in view.items if i.kind == "tool_result"}
    assert texts[6].startswith("exit 0 for step 6") and texts[5].startswith("exit 0 for step 5")  # age 0, 1
    assert texts[4] == "[shell result, 6 lines, summarized: exit 0 for step 4]"  # age 2
    assert texts[3].startswith("[shell result")  # age 3
    assert texts[2] is None and texts[1] is None  # age >= 4
    reasons = {d.turn: d.reason for d in view.decisions}
    assert reasons[1] == "tool result 5 turns old (limit 4)" and reasons[3] == "tool result 3 turns old"


def test_a_tool_results_own_summary_is_its_one_line_form(tiny_backend):
    window = ContextWindow(tiny_backend, budget=5000, policies=[ToolResultLifecycle(verbatim_turns=0)])
    window.add_message("user", "search")
    window.add_tool_result("search", "1. a\n2. b\n3. c", summary="3 hits, best: a")
    assert "summarized: 3 hits, best: a" in window.render().messages[-1]["content"]


def test_code_dedup_keeps_only_the_newest_version_of_a_snippet(tiny_backend):
    window = ContextWindow(tiny_backend, budget=5000, policies=[CodeDedup()])
    v1 = "```python\ndef area(r):\n    return 3.14 * r * r\n```"
    v2 = "```python\ndef area(r):\n    return math.pi * r ** 2\n```"
    window.add_message("user", "write area")
    window.add_message("assistant", f"Here:\n{v1}")
    window.add_message("user", "use math.pi")
    window.add_message("assistant", f"Updated:\n{v2}")
    window.add_message("user", "and a greeting")
    window.add_message("assistant", "```python\nprint('hello')\n```")
    view = window.history_view()
    texts = [view.text(i) for i in view.items]
    assert v1 not in texts[1] and "[code block superseded by the newer version in turn 2] (same def area)" in texts[1]
    assert v2 in texts[3] and "print('hello')" in texts[5]
    assert [(d.turn, d.action) for d in view.decisions] == [(1, "dedup")]


def test_code_dedup_catches_near_identical_snippets_without_a_name():
    a = "```\nx = load()\ny = transform(x)\nsave(y)\nreport(y)\n```"
    b = "```\nx = load()\ny = transform(x)\nsave(y)\nreport(y, verbose=True)\n```"
    assert snippet_key(a) is None and similarity(a, b) >= 0.6
    assert snippet_key("```python app.py\nprint(1)\n```") == "file:app.py"
    assert similarity(a, "```\ncompletely different code here\n```") < 0.2


def test_selective_eviction_drops_small_talk_and_unreferenced_turns_but_keeps_referenced_ones(tiny_backend):
    window = ContextWindow(tiny_backend, budget=5000, policies=[SelectiveEviction(min_age=3)])
    window.add_message("user", "thanks, you are great")  # turn 1: small talk
    window.add_message("assistant", "happy to help")
    window.add_message("user", "the config lives in settings_prod.yaml")  # turn 2: referenced later
    window.add_message("assistant", "noted")
    window.add_message("user", "what about the weather in Reykjavik tomorrow?")  # turn 3: never referenced
    window.add_message("assistant", "probably windy")
    window.add_message("user", "you must never delete files")  # turn 4: a constraint, kept
    window.add_message("assistant", "understood")
    for turn in range(5, 8):
        window.add_message("user", f"edit settings_prod.yaml step {turn}")
        window.add_message("assistant", "done")
    view = window.history_view()
    kept_turns = {i.turn for i in view.live()}
    assert 1 not in kept_turns and 3 not in kept_turns
    assert {2, 4, 5, 6, 7} <= kept_turns
    reasons = {d.turn: d.reason for d in view.decisions}
    assert "small talk" in reasons[1]
    assert reasons[3] == "turn 3 never referenced again (no distinctive term of it appears later)"


def test_abandoned_approaches_are_evicted_at_once(tiny_backend):
    window = ContextWindow(tiny_backend, budget=5000, policies=[SelectiveEviction(min_age=10)])
    window.add_message("user", "try recursion for fib_fast")
    window.add_message("assistant", "recursive version ...")
    window.add_message("user", "that overflows; use iteration for fib_fast instead")
    window.abandon(1, 1, reason="recursion overflowed the stack")
    window.add_message("assistant", "iterative version ...")
    view = window.history_view()
    assert [i.turn for i in view.live()] == [2, 2]
    assert {d.reason for d in view.decisions} == {"abandoned approach: recursion overflowed the stack"}


def test_salient_terms():
    terms = salient_terms("Edit `main.py` and call parseConfig with port 8080; AWS region is eu_west")
    assert {"main.py", "parseconfig", "8080", "aws", "eu_west"} <= terms
    assert salient_terms("ok thanks") == set()


def test_corrections_mark_superseded_assertions(tiny_backend):
    window = ContextWindow(tiny_backend, budget=5000)
    window.add_message("user", "The deadline is Friday and the budget is 300.")
    window.add_message("assistant", "Okay, deadline is Friday.")
    window.correct("deadline is Friday", "the deadline is Monday")
    view = window.history_view()
    texts = [view.text(i) for i in view.items]
    assert (
        texts[0] == "The ~~deadline is Friday~~ [superseded at turn 2: the deadline is Monday] and the budget is 300."
    )
    assert "~~deadline is Friday~~" in texts[1]
    assert texts[2].startswith("Correction: the deadline is Monday")
    assert {d.action for d in view.decisions} == {"supersede"}


def test_state_object_updates_in_place_and_renders_stably():
    state = StateObject({"plan": {"step": 1}})
    state.set("plan.step", 2)
    state.set("plan.step", 2)  # no change, no new version
    state.set("files", ["a.py"])
    assert state.get("plan.step") == 2 and state.version == 3
    assert state.render() == StateObject({"files": ["a.py"], "plan": {"step": 2}}).render()
    state.delete("files")
    assert state.as_dict() == {"plan": {"step": 2}}
    assert [c[1] for c in state.changes] == ["plan", "plan.step", "files", "files"]


def test_objective_anchored_on_every_turn(tiny_backend):
    window = ContextWindow(tiny_backend, budget=5000)
    window.objective = "migrate the database"
    window.constraints = ["no downtime"]
    for turn in range(3):
        tail = window.render(f"step {turn}").messages[-1]["content"]
        assert tail.endswith("Objective: migrate the database\nConstraints you must follow:\n- no downtime")
        window.add_message("user", f"step {turn}")
        window.add_message("assistant", "ok")


def test_policies_compose_and_the_view_is_recomputed_from_the_untouched_history(tiny_backend):
    window = ContextWindow(tiny_backend, budget=5000, policies=[ToolResultLifecycle(0, 1), SelectiveEviction(2)])
    window.add_message("user", "look up quarterly_revenue")
    window.add_tool_result("db", "quarterly_revenue = 12")
    window.add_message("user", "thanks")
    window.add_message("user", "and quarterly_revenue again?")
    first = window.history_view()
    assert window.history[1].content == "quarterly_revenue = 12"  # the history itself is never rewritten
    assert isinstance(first, HistoryView) and first.texts[window.history[1].item_id] is None
