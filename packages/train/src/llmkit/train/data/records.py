"""The JSONL record formats and their validation (errors name the file and line).

chat SFT:          {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
prompt/completion: {"prompt": "..." or [messages], "completion": "..." or [assistant message]}
preference pair:   {"prompt": ..., "chosen": ..., "rejected": ..., "margin": 0.5}   (margin optional)
RL prompt:         {"prompt": ..., "reference": ..., "verifier": "math_answer"}     (or "verifiers": {name: weight})

A string prompt is raw text (no chat template); a list of messages goes through the chat template.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DataError

Prompt = str | list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class ChatRecord:
    messages: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class CompletionRecord:
    prompt: Prompt
    completion: str


@dataclasses.dataclass(frozen=True)
class PreferenceRecord:
    prompt: Prompt
    chosen: str
    rejected: str
    margin: float = 0.0


@dataclasses.dataclass(frozen=True)
class PromptRecord:
    prompt: Prompt
    reference: Any = None
    verifiers: Mapping[str, float] | None = None


def read_jsonl(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(location "file:line", object) for every non-blank line."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {file} does not exist")
    rows = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{where}: a record must be a JSON object, not {type(obj).__name__}")
            rows.append((where, obj))
    if not rows:
        raise DataError(f"data file {file} holds no records")
    return rows


def _messages(value: Any, where: str, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: {key!r} must be a non-empty list of messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message:
            raise DataError(f"{where}: {key}[{i}] must be an object with 'role' and 'content'")
        if not isinstance(message.get("content"), str) and not message.get("tool_calls"):
            raise DataError(f"{where}: {key}[{i}] ({message['role']}) has no text content")
    return value


def _prompt(obj: dict[str, Any], where: str) -> Prompt:
    prompt = obj.get("prompt")
    if isinstance(prompt, str):
        if not prompt:
            raise DataError(f"{where}: 'prompt' is empty")
        return prompt
    if isinstance(prompt, list):
        return _messages(prompt, where, "prompt")
    raise DataError(f"{where}: 'prompt' must be a string or a list of messages")


def _response(obj: dict[str, Any], key: str, where: str) -> str:
    """A completion given as a string or as [{"role": "assistant", "content": ...}]."""
    value = obj.get(key)
    if isinstance(value, list):
        messages = _messages(value, where, key)
        if len(messages) != 1 or messages[0]["role"] != "assistant":
            raise DataError(f"{where}: {key!r} as a list must hold exactly one assistant message")
        value = messages[0]["content"]
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: {key!r} must be a non-empty string (or one assistant message)")
    return value


def _check_keys(obj: dict[str, Any], allowed: set[str], where: str, kind: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise DataError(f"{where}: unexpected keys {extra} in a {kind} record (allowed: {sorted(allowed)})")


def sft_record(obj: dict[str, Any], where: str) -> ChatRecord | CompletionRecord:
    if "messages" in obj:
        _check_keys(obj, {"messages", "id"}, where, "chat")
        messages = _messages(obj["messages"], where, "messages")
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError(f"{where}: the conversation has no assistant message to learn from")
        return ChatRecord(messages)
    if "prompt" in obj and "completion" in obj:
        _check_keys(obj, {"prompt", "completion", "id"}, where, "prompt/completion")
        return CompletionRecord(_prompt(obj, where), _response(obj, "completion", where))
    raise DataError(f"{where}: an SFT record needs 'messages', or 'prompt' and 'completion'")


def preference_record(obj: dict[str, Any], where: str) -> PreferenceRecord:
    missing = [key for key in ("prompt", "chosen", "rejected") if key not in obj]
    if missing:
        raise DataError(f"{where}: a preference record needs 'prompt', 'chosen' and 'rejected' (missing {missing})")
    _check_keys(obj, {"prompt", "chosen", "rejected", "margin", "id"}, where, "preference")
    margin = obj.get("margin", 0.0)
    if not isinstance(margin, int | float) or isinstance(margin, bool):
        raise DataError(f"{where}: 'margin' must be a number")
    chosen, rejected = _response(obj, "chosen", where), _response(obj, "rejected", where)
    if chosen == rejected:
        raise DataError(f"{where}: 'chosen' and 'rejected' are identical")
    return PreferenceRecord(_prompt(obj, where), chosen, rejected, float(margin))


def prompt_record(obj: dict[str, Any], where: str) -> PromptRecord:
    if "prompt" not in obj:
        raise DataError(f"{where}: an RL record needs 'prompt'")
    _check_keys(obj, {"prompt", "reference", "verifier", "verifiers", "id"}, where, "RL prompt")
    verifiers = obj.get("verifiers")
    if "verifier" in obj:
        if verifiers is not None:
            raise DataError(f"{where}: give 'verifier' or 'verifiers', not both")
        if not isinstance(obj["verifier"], str):
            raise DataError(f"{where}: 'verifier' must be a verifier name")
        verifiers = {obj["verifier"]: 1.0}
    if verifiers is not None and (
        not isinstance(verifiers, dict)
        or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in verifiers.values())
    ):
        raise DataError(f"{where}: 'verifiers' must map verifier names to numeric weights")
    return PromptRecord(_prompt(obj, where), obj.get("reference"), verifiers)


PARSERS = {"sft": sft_record, "reward": preference_record, "dpo": preference_record, "ppo": prompt_record}
PARSERS["grpo"] = prompt_record


def load_records(path: str | Path, method: str) -> list[tuple[str, Any]]:
    """(location, record) for every record of `path`, parsed for `method` (sft, reward, dpo, ppo, grpo)."""
    parse = PARSERS[method]
    return [(where, parse(obj, where)) for where, obj in read_jsonl(path)]
