"""Constraints the user states in conversation: detected, promoted, kept through long sessions, corrected."""

from __future__ import annotations

import json

import pytest

from llmkit.context import (
    ContextWindow,
    HandoffPacket,
    LMConstraintExtractor,
    PromptedJSON,
    RollingSummary,
    RuleDetector,
    SelectiveEviction,
    StructuredOutputError,
    Summarizer,
    lint,
    load_session,
    save_session,
)
from llmkit.context.constraints import STATE_KEY
from llmkit.core.backends import ModelBackend

ALLERGY = "I am allergic to peanuts, so never suggest anything with peanuts."
LIFTED = "Actually, peanuts are fine now."
# long ingredient names come back every few turns, so SelectiveEviction sees them referenced and keeps them
INGREDIENTS = ["cauliflower", "chickpeas", "aubergines", "mushrooms", "courgettes", "artichokes", "asparagus"]
DISHES = ["a gratin", "a curry", "a stir-fry", "a soup", "a salad", "a risotto", "a frittata", "a stew"]


@pytest.fixture(params=["tiny", "smollm2"])
def backend(request):
    """The tiny random model, and the default model (its real tokenizer and chat template)."""
    if request.param == "tiny":
        return request.getfixturevalue("tiny_backend")
    return ModelBackend(request.getfixturevalue("smollm2"))


def cooking_window(backend, turns: int, **kwargs) -> ContextWindow:
    """The issue's session: the allergy in turn 1, then `turns - 1` turns of cooking chat and small talk."""
    window = ContextWindow(backend, budget=2000, zones={"history": 500}, policies=[SelectiveEviction()], **kwargs)
    window.system = "You are a friendly cooking assistant."
    window.add_message("user", f"Hi! {ALLERGY}")
    window.add_message("assistant", "Noted, no peanuts. What would you like to cook?")
    for turn in range(2, turns + 1):
        ingredient, dish = INGREDIENTS[turn % len(INGREDIENTS)], DISHES[turn % len(DISHES)]
        if turn == 20:  # SelectiveEviction keeps this one too ("always"), at a lower protection level
            window.add_message("user", "I always forget to buy lemons, haha.")
            window.add_message("assistant", "Happens to everyone!")
        elif turn % 3:
            window.add_message("user", f"What can I cook with {ingredient} tonight?")
            window.add_message(
                "assistant",
                f"Try {dish} with {ingredient}: soften an onion in olive oil, add the {ingredient} with garlic, "
                "season well, simmer for twenty minutes and finish with a little lemon zest.",
            )
        else:
            window.add_message("user", "Thanks, that sounds lovely.")
            window.add_message("assistant", "You're welcome, enjoy your meal!")
    return window


def rendered_text(rendered) -> str:
    return "\n".join(m["content"] or "" for m in rendered.messages)


@pytest.mark.parametrize("turns", [40, 200])
def test_an_allergy_stated_at_turn_1_still_holds_at_turn_40_and_200(backend, turns):
    window = cooking_window(backend, turns - 1)
    rendered = window.render("What should I make for dinner tonight?")
    # promoted with its wording and turn, anchored at the very end of the context
    assert [(r.text, r.turn, r.source) for r in window.stated_constraints] == [(ALLERGY, 1, "rules:allergy")]
    assert rendered.messages[-1]["content"].rstrip().endswith(f"- {ALLERGY} (stated by the user at turn 1)")
    # and the turn itself is cut last: later small talk went for the 500-token history budget, turn 1 stayed
    history = [m["content"] for m in rendered.messages[1:-1]]
    assert f"Hi! {ALLERGY}" in history
    assert rendered.zone_tokens["history"] <= 500 and rendered.total_tokens <= 2000
    assert any(d.zone == "history" for d in rendered.dropped)
    assert not [d for d in rendered.dropped if d.constraint]
    assert not [f for f in lint(window, rendered) if f.severity == "error"]


def test_a_correction_supersedes_the_constraint_and_only_the_newer_one_is_rendered(backend):
    window = cooking_window(backend, 11)
    window.add_message("user", f"Good news from my doctor. {LIFTED} What can I make?")  # turn 12
    window.add_message("assistant", "Great! How about a satay?")
    rendered = window.render("Something with a crunchy topping, please.")
    old, new = window.stated_constraints
    assert (old.text, old.superseded_at, old.superseded_by) == (ALLERGY, 12, LIFTED)
    assert (new.text, new.turn, new.active) == (LIFTED, 12, True)
    assert [(c.claim, c.correction, c.turn) for c in window.corrections] == [(ALLERGY, LIFTED, 12)]
    reminders = rendered.messages[-1]["content"]
    assert f"- {LIFTED} (stated by the user at turn 12)" in reminders and ALLERGY not in reminders
    text = rendered_text(rendered)  # the old wording survives only struck through, with the correction
    assert text.count(ALLERGY) == text.count(f"~~{ALLERGY}~~ [superseded at turn 12: {LIFTED}]") == 1


def test_a_newer_rule_supersedes_an_older_one_on_the_same_subject(tiny_backend):
    window = ContextWindow(tiny_backend, budget=2000)
    window.add_message("user", "Always give prices in euros.")
    window.add_message("user", "I prefer window seats.")
    window.add_message("user", "Actually, from now on always give prices in dollars.")
    assert [(r.text, r.active) for r in window.stated_constraints] == [
        ("Always give prices in euros.", False),
        ("I prefer window seats.", True),
        ("Actually, from now on always give prices in dollars.", True),
    ]
    reminders = window.render("How much is the hotel?").messages[-1]["content"]
    assert "euros" not in reminders and "in dollars" in reminders
    assert "- I prefer window seats. (a preference the user stated at turn 2)" in reminders


def test_a_constraint_turn_that_alone_overflows_the_history_zone_is_reported(backend):
    window = ContextWindow(backend, budget=3000, zones={"history": 200})
    recipe = "Here is my grandmother's recipe, step by step. " + "Stir the sauce slowly and taste it. " * 40
    rule = "Never add peanuts to anything you suggest."
    window.add_message("user", f"{recipe}\n{rule}")
    window.add_message("assistant", "Lovely recipe.")
    rendered = window.render("What goes well with it?")
    cut = [d for d in rendered.dropped if d.constraint]
    assert [(d.zone, d.description, d.constraint) for d in cut] == [("history", "turn 1 user", rule)]
    assert "only protected content was left" in cut[0].reason
    findings = [f for f in lint(window, rendered) if f.rule == "constraint-dropped"]
    assert len(findings) == 1 and findings[0].severity == "warning"  # the wording is still anchored at the end
    assert rule in findings[0].message and "still anchored" in findings[0].message
    assert rule in rendered.messages[-1]["content"]


def test_stated_constraints_that_overflow_the_reminders_zone_are_an_error_not_silence(tiny_backend):
    window = ContextWindow(tiny_backend, budget=3000, zones={"reminders": 30, "history": 0})
    long_rule = "Never use " + ", ".join(f"ingredient number {n}" for n in range(15)) + " in anything."
    window.add_message("user", long_rule)
    rendered = window.render("Dinner ideas?")
    assert [(d.zone, d.constraint) for d in rendered.dropped if d.zone == "reminders"] == [("reminders", long_rule)]
    findings = {(f.rule, f.severity) for f in lint(window, rendered)}
    assert ("constraint-dropped", "error") in findings and ("required-missing", "error") in findings


GOOD_SUMMARY = {
    "objective": "cook dinner",
    "decisions": ["a curry"],
    "actions_and_outcomes": [],
    "current_state": "choosing a dish",
    "constraints": [],  # the summarizer "forgets" the allergy
}


def test_a_summary_that_drops_a_promoted_constraint_cannot(scripted):
    backend = scripted([json.dumps(GOOD_SUMMARY), json.dumps({**GOOD_SUMMARY, "constraints": [ALLERGY]})])
    window = cooking_window(backend, 12)
    rolling = RollingSummary(Summarizer(PromptedJSON(backend)), live_turns=4, fold_every=4)
    assert rolling.maybe_fold(window) and window.summarized_through == 8
    assert window.summary.constraints == [ALLERGY]
    rendered = window.render("Dinner?")
    summary_message = rendered.messages[1]["content"]
    assert summary_message.startswith("Summary of the conversation so far") and f"- {ALLERGY}" in summary_message
    assert ALLERGY in rendered.messages[-1]["content"]
    # after the correction the summary still written with the allergy shows it struck through, and the
    # next fold leaves it out although the model wrote it again
    window.add_message("user", LIFTED)
    assert f"~~{ALLERGY}~~ [superseded at turn 13: {LIFTED}]" in window.render("Dinner?").messages[1]["content"]
    for turn in range(3):
        window.add_message("user", f"What about {INGREDIENTS[turn]}?")
    assert rolling.maybe_fold(window)
    assert window.summary.constraints == [LIFTED]


def test_the_state_object_and_a_handoff_packet_carry_the_constraint_and_its_correction(tiny_backend, tmp_path):
    window = cooking_window(tiny_backend, 11)
    window.add_message("user", LIFTED)
    window.state.set("meal", "dinner")
    record = window.state.get(STATE_KEY)
    assert [(r["text"], r["superseded_at"]) for r in record] == [(ALLERGY, 12), (LIFTED, None)]
    assert STATE_KEY not in rendered_text(window.render("Ideas?"))  # rendered once, by the reminders zone
    packet = HandoffPacket.from_window(window, role="chef", task="plan the menu", distilled_context="A dinner.")
    assert packet.constraints == [LIFTED]
    prompt = packet.render_system_prompt()
    state = json.loads(prompt.split("State (JSON):\n", 1)[1].split("\n\n# ", 1)[0])
    assert state["meal"] == "dinner"
    assert [(r["text"], r["superseded_by"]) for r in state[STATE_KEY]] == [(ALLERGY, LIFTED), (LIFTED, None)]
    save_session(window, tmp_path / "session.json")
    loaded, _ = load_session(tmp_path / "session.json", tiny_backend)
    assert loaded.stated_constraints == window.stated_constraints
    assert loaded.render("Ideas?").messages[-1]["content"] == window.render("Ideas?").messages[-1]["content"]


@pytest.mark.parametrize(
    ("message", "kind", "rule"),
    [
        ("I am allergic to shellfish.", "constraint", "allergy"),
        ("I'm vegetarian, by the way.", "constraint", "diet"),
        ("I can't eat gluten.", "constraint", "cannot-consume"),
        ("Never use the oven.", "constraint", "never"),
        ("So always answer in metric units.", "constraint", "always"),
        ("Please don't add sugar.", "constraint", "do-not"),
        ("You must reply in French.", "constraint", "must"),
        ("Make sure to list the calories.", "constraint", "make-sure"),
        ("I prefer short recipes.", "preference", "prefer"),
        ("I hate cilantro.", "preference", "dislike"),
        ("My favourite cuisine is Thai.", "preference", "favourite"),
    ],
)
def test_the_documented_rules_find_what_users_state(message, kind, rule):
    (found,) = RuleDetector().detect(f"What's for dinner? {message} Thanks!")
    assert (found.text, found.kind, found.source) == (message, kind, f"rules:{rule}")


@pytest.mark.parametrize(
    "message",
    ["Don't worry about it.", "I never liked cake as a child.", "What can I cook tonight?", "It always rains here."],
)
def test_everyday_sentences_are_not_constraints(message):
    assert RuleDetector().detect(message) == []


def test_a_correction_about_nothing_stated_is_not_promoted(tiny_backend):
    window = ContextWindow(tiny_backend, budget=2000)
    window.add_message("user", "Actually, the weather is fine now.")
    assert window.stated_constraints == []


def test_an_lm_extractor_through_the_backend_promotes_exact_quotes_only(scripted):
    quote = "Peanuts make me very ill, keep them out of every dish."
    backend = scripted(
        [
            json.dumps(
                {
                    "constraints": [
                        {"text": quote, "kind": "constraint"},
                        {"text": "The user hates peanuts.", "kind": "preference"},  # a paraphrase: refused
                    ]
                }
            ),
            json.dumps({"constraints": [{"text": "They are fine again.", "kind": "constraint", "corrects": quote}]}),
        ]
    )
    extractor = LMConstraintExtractor(PromptedJSON(backend))
    window = ContextWindow(backend, budget=2000, constraint_detectors=[RuleDetector(), extractor])
    assert RuleDetector().detect(quote) == []  # beyond the rules
    window.add_message("user", f"Hello. {quote}")
    assert [(r.text, r.source) for r in window.stated_constraints] == [(quote, "lm")]
    assert extractor.rejected == [("The user hates peanuts.", "not a quote of the user's message")]
    window.add_message("user", "Good news on the peanuts. They are fine again.")
    assert "Constraints in force so far:\n- " + quote in backend.conversations[1][1]["content"]
    old, new = window.stated_constraints
    assert (old.superseded_by, new.text, new.active) == ("They are fine again.", "They are fine again.", True)


def test_a_failing_extractor_leaves_the_window_unchanged(scripted):
    backend = scripted(["not json", "still not json"])
    window = ContextWindow(
        backend, budget=2000, constraint_detectors=[LMConstraintExtractor(PromptedJSON(backend, max_attempts=2))]
    )
    with pytest.raises(StructuredOutputError):
        window.add_message("user", "I am allergic to peanuts.")
    assert (window.turn, window.history, window.stated_constraints) == (0, [], [])


def test_detection_can_be_turned_off(tiny_backend):
    window = ContextWindow(tiny_backend, budget=2000, constraint_detectors=())
    window.add_message("user", ALLERGY)
    assert window.stated_constraints == [] and ALLERGY not in window.render("hi").messages[-1]["content"]
