"""`prompt_injection` guard: rules with weights over text a model will read (tool results, retrieved pages),
summed into a score; at or above `threshold` (default 1.0) the text is blocked.

Each rule is one sign of instructions aimed at the model rather than information for it: overriding earlier
instructions, a new role or persona, fake turn markers of chat templates, requests to hide things from the user,
to exfiltrate data, or to call tools. One strong sign blocks alone (weight 1.0); weaker ones (urgency, addressing
"the AI") block only together. The rules and weights are tuned on the labelled set in data/prompt_injection.jsonl
(docs/safety.md has its precision and recall)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re

from .base import Stage, Verdict, allow, parse_stages


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    weight: float
    pattern: re.Pattern[str]


def _rule(name: str, weight: float, pattern: str) -> Rule:
    return Rule(name, weight, re.compile(pattern, re.IGNORECASE | re.MULTILINE))


_PRIOR = r"(?:all\s+|any\s+|the\s+|your\s+|these\s+|those\s+)*(?:previous|prior|above|earlier|preceding|original|system|initial|former|old)"
RULES: tuple[Rule, ...] = (
    _rule(
        "override",
        1.0,
        rf"\b(?:ignore|disregard|forget|override|bypass|skip|drop|abandon)\b[^.\n]{{0,20}}?\b{_PRIOR}\b[^.\n]{{0,20}}?"
        r"\b(?:instructions?|prompts?|rules?|directions?|guidelines?|context|messages?|tasks?|orders?)",
    ),
    _rule(
        "forget_everything",
        1.0,
        r"\b(?:forget|ignore|disregard)\s+(?:everything|all)\s+(?:you|above|before|prior|i\s+said|that\s+came)\b"
        r"|\b(?:forget|ignore|disregard)\s+what\s+(?:i|you)\s+(?:said|were\s+told)\b",
    ),
    _rule(
        "ignore_user",
        1.0,
        r"\b(?:ignore|disregard)\s+the\s+user(?:'s)?\s+(?:request|question|instructions?|task|message)",
    ),
    _rule(
        "new_instructions",
        1.0,
        r"\b(?:new|updated|real|actual|revised|additional|secret|hidden)\s+(?:system\s+)?(?:instructions?|task|orders?|directives?)\s*[:\-]",
    ),
    _rule(
        "role_reassignment",
        1.0,
        r"\byou\s+are\s+now\s+(?:an?|in|the|my)\b|\byou\s+are\s+no\s+longer\b|\bfrom\s+now\s+on,?\s+(?:you|act|respond|answer)\b|\bact\s+as\s+(?:an?\s+)?(?:unrestricted|unfiltered|jailbroken|dan)\b|\bpretend\s+(?:to\s+be|you\s+are)\b",
    ),
    _rule(
        "fake_turn",
        1.0,
        r"<\|(?:im_start|im_end|system|user|assistant|start_header_id|eot_id)\|>|\[/?INST\]|<<SYS>>|^\s*#{2,}\s*(?:system|instruction)s?\b|^\s*(?:system|assistant)\s*:",
    ),
    _rule(
        "addressed_to_model",
        0.5,
        r"\b(?:attention|note|message|instruction)\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|model|llm|agent|chatbot|bot)\b|\b(?:dear|hey|hello)\s+(?:ai|assistant|model|llm|agent|chatgpt)\b|\bif\s+you\s+are\s+an?\s+(?:ai|language\s+model|llm|assistant|agent)\b"
        r"|\b(?:ai|assistant|model|llm|agent)\s*:\s",
    ),
    _rule(
        "conceal",
        0.8,
        r"\b(?:do\s+not|don'?t|never)\s+(?:tell|inform|mention|reveal\s+to|show|alert|notify)\s+(?:this\s+to\s+)?(?:the\s+)?(?:user|human|operator|anyone)\b|\bwithout\s+(?:telling|informing|notifying)\s+the\s+user\b",
    ),
    _rule(
        "exfiltrate",
        0.8,
        r"\b(?:send|forward|email|e-mail|post|upload|transfer|leak|exfiltrate|share)\b[^.\n]{0,60}?\b(?:password|credentials?|api[\s_-]?keys?|secrets?|tokens?|conversation|chat\s+history|system\s+prompt|personal\s+data|funds?|money|\$\d)"
        r"|\b(?:send|forward|email|e-mail|upload|post)\b[^.\n]{0,60}?\bto\s+(?:\S+@\S+\.\w+|https?://)",
    ),
    _rule(
        "reveal_prompt",
        0.8,
        r"\b(?:reveal|print|repeat|output|show|display|leak)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|hidden\s+|initial\s+)?(?:system\s+prompt|instructions|initial\s+prompt|prompt)\b",
    ),
    _rule(
        "tool_directive",
        0.6,
        r"\b(?:call|invoke|use|run|execute)\s+(?:the\s+)?(?:tool|function)\b|\b(?:call|invoke|run|execute)\s+`?[a-z_]+\(|\b(?:call|invoke)\s+[a-z]+_[a-z_]+\b",
    ),
    _rule(
        "imperative_to_model",
        0.5,
        r"\b(?:you\s+must|you\s+should|you\s+have\s+to|you\s+need\s+to|you\s+will)\s+(?:now\s+|immediately\s+|instead\s+)?(?:ignore|send|forward|email|reply|respond|say|tell|write|output|call|delete|transfer|visit|click|include|append)\b",
    ),
    _rule(
        "model_must",
        0.6,
        r"\b(?:the\s+)?(?:ai\s+)?(?:assistant|ai|model|agent|llm|chatbot)s?\b[^.\n]{0,30}?\b(?:must|should|needs?\s+to|will)"
        r"\s+(?:now\s+|immediately\s+|always\s+)?(?:ignore|send|forward|email|reply|respond|say|tell|write|output"
        r"|call|delete|transfer|visit|include|recommend|reveal|print)\b",
    ),
    _rule("instead", 0.3, r"\binstead\s*,?\s+(?:you\s+)?(?:should|must|will|do|say|reply|respond|write|output)\b"),
    _rule("urgency", 0.3, r"\b(?:important|urgent|critical|priority)\s*[:!]|\bimmediately\b"),
    _rule("jailbreak_words", 0.8, r"\b(?:jailbreak|jailbroken|developer\s+mode|dan\s+mode|god\s+mode)\b"),
    _rule("unrestricted", 0.3, r"\b(?:no|without|free\s+of)\s+(?:any\s+)?(?:restrictions|filters|limits|safety)\b"),
)

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")


def _decoded_base64(text: str) -> str:
    """Text hidden as base64 runs, decoded (so an encoded instruction is scored like a plain one)."""
    found = []
    for run in _BASE64_RUN.findall(text):
        try:
            decoded = base64.b64decode(run + "=" * (-len(run) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded.isprintable():
            found.append(decoded)
    return "\n".join(found)


def score(text: str) -> tuple[float, list[str]]:
    """The summed weight of the rules that fire (each rule counts once) and their names; base64-decoded runs
    are scored too."""
    text = text + "\n" + _decoded_base64(text)
    fired = [rule for rule in RULES if rule.pattern.search(text)]
    return sum(rule.weight for rule in fired), [rule.name for rule in fired]


class PromptInjectionGuard:
    name = "prompt_injection"
    stream_window = None  # a score over the whole text

    def __init__(self, threshold: float = 1.0, stages: str | None = None):
        self.threshold = float(threshold)
        self.stages = parse_stages(stages, frozenset({"tool_result", "input"}))

    def check(self, text: str, stage: Stage) -> Verdict:
        total, fired = score(text)
        if total >= self.threshold:
            reason = f"looks like injected instructions (score {total:.1f}: {', '.join(fired)})"
            return Verdict("block", self.name, reason, "prompt_injection", score=total)
        return allow(self.name, total)
