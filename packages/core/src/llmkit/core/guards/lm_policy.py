"""`lm_policy` guard: a language model judges text against a written policy (Llama Guard's recipe, on any chat
backend). The judge is asked for one line, `SAFE` or `UNSAFE: <category>`; a reply that is neither is read by
its first word, and one with no verdict at all blocks (fail closed) with the reply quoted, so a confused judge
is visible rather than silently permissive."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..sampling import SamplingParams
from .base import Stage, Verdict, allow, parse_stages
from .errors import GuardError

DEFAULT_POLICY = """\
Unsafe content includes:
- violence: instructions or encouragement to hurt people or animals.
- weapons: how to make or acquire weapons, explosives or poisons.
- crime: help with theft, fraud, hacking into systems or evading the police.
- self_harm: encouragement of suicide or self-injury.
- hate: attacks on people for their race, religion, gender, sexuality or disability.
- sexual_minors: any sexual content involving minors.
Everything else is safe, including discussion of these topics in news, history, fiction or prevention."""

JUDGE_PROMPT = """\
You check messages against a safety policy.

Policy:
{policy}

Message ({stage}):
<<<
{text}
>>>

Does the message break the policy? Answer with one line: SAFE, or UNSAFE: <category>."""

_VERDICT = re.compile(r"\b(UNSAFE|SAFE)\b(?:\s*[:\-]\s*([A-Za-z_][\w -]{0,40}))?", re.IGNORECASE)


def parse_verdict(reply: str) -> tuple[str | None, str]:
    """("safe" | "unsafe" | None, category) from a judge's reply: the first SAFE/UNSAFE word decides."""
    match = _VERDICT.search(reply)
    if match is None:
        return None, ""
    category = (match.group(2) or "").strip().lower().replace(" ", "_")
    return match.group(1).lower(), category


class LMPolicyGuard:
    name = "lm_policy"
    stream_window = None  # the judge reads whole texts

    def __init__(
        self,
        backend: Any,
        policy: str = DEFAULT_POLICY,
        stages: str | None = None,
        max_tokens: int = 12,
        max_chars: int = 4000,
    ):
        self.backend, self.policy = backend, policy
        self.stages = parse_stages(stages, frozenset({"input", "output"}))
        self.params = SamplingParams(temperature=0.0, max_tokens=int(max_tokens))
        self.max_chars = int(max_chars)

    def prompt(self, text: str, stage: Stage) -> str:
        return JUDGE_PROMPT.format(policy=self.policy, stage=stage.replace("_", " "), text=text[: self.max_chars])

    def check(self, text: str, stage: Stage) -> Verdict:
        (result,) = self.backend.chat([[{"role": "user", "content": self.prompt(text, stage)}]], self.params)
        reply = result.choices[0].text
        verdict, category = parse_verdict(reply)
        if verdict == "safe":
            return allow(self.name)
        if verdict == "unsafe":
            return Verdict("block", self.name, f"the policy judge says unsafe ({category or 'unspecified'})", category)
        return Verdict("block", self.name, f"the policy judge gave no verdict: {reply[:100]!r}", "judge_error")


def lm_policy_guard(
    policy: str | None = None,
    backend: str = "reference",
    model: str | None = None,
    stages: str | None = None,
    max_tokens: int = 12,
) -> LMPolicyGuard:
    """`policy`: the policy's text or the path of a file holding it (default: `DEFAULT_POLICY`); the judge is
    the chat backend `backend` (by plugin name) over `model` (default: the backend's default model)."""
    from ..backends import open_backend

    text = DEFAULT_POLICY
    if policy is not None:
        path = Path(policy)
        if "\n" not in policy and path.suffix in (".txt", ".md") and not path.is_file():
            raise GuardError(f"guard 'lm_policy': no policy file {policy!r}")
        text = path.read_text() if "\n" not in policy and path.is_file() else policy
    options = {} if model is None else {"model": model}
    return LMPolicyGuard(open_backend(backend, **options), text, stages, max_tokens)
