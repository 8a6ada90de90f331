"""Guards per request (`llmkit serve --guard NAME[:options]`, `--guards-config FILE`): input guards refuse a
request with a 400 naming the guard; output guards withhold a blocked reply (`finish_reason: "content_filter"`)
or redact it. Streams hold back the last `stream_window` characters (where a pattern could still match) and end
the blocked choice early; a guard that judges only whole texts holds its stream until the reply is finished."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from llmkit.core.guards import Guard, GuardError, Span, check_all, check_messages, load_guards_config, open_guard
from llmkit.core.guards.base import redact

from ..outputs import RequestOutput, SequenceDelta
from . import responses as R
from .errors import APIError

logger = logging.getLogger(__name__)

CONTENT_FILTER = "content_filter"


class ServerGuards:
    """The server's guards, in order; input guards see the request's messages or prompt, output guards the reply."""

    def __init__(self, guards: Sequence[Guard]):
        self.guards = list(guards)
        self.output_guards = [g for g in self.guards if "output" in g.stages]
        windows = [g.stream_window for g in self.output_guards]
        # characters a stream holds back: the largest window, or None (the whole reply) when a guard has none
        self.stream_window: int | None = None if None in windows else max(windows, default=0)

    @classmethod
    def from_options(cls, specs: Iterable[str] = (), config: str | None = None) -> ServerGuards | None:
        """Guards from `--guard` specs and a config file (config first); None when there are none."""
        try:
            guards = (load_guards_config(config) if config else []) + [open_guard(spec) for spec in specs]
        except GuardError as err:
            raise GuardError(f"--guard: {err}") from None
        return cls(guards) if guards else None

    def describe(self) -> str:
        return ", ".join(f"{g.name} ({'+'.join(sorted(g.stages))})" for g in self.guards)

    # -- input --------------------------------------------------------------------------------------

    def check_messages(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Raise the 400 of the first guard that blocks the messages."""
        for guard in self.guards:
            verdict = check_messages(guard, messages)
            if verdict.action != "allow":
                logger.warning("guard %s blocked a request: %s", verdict.guard, verdict.reason)
                raise APIError(
                    400,
                    f"the request was blocked by guard '{verdict.guard}' ({verdict.category}): {verdict.reason}",
                    param="messages",
                    code="guard_blocked",
                )

    def check_prompts(self, texts: Sequence[str]) -> None:
        self.check_messages([{"role": "user", "content": t} for t in texts])

    # -- output -------------------------------------------------------------------------------------

    def filter_choices(self, choices: dict[int, R.Choice]) -> None:
        """Finished replies: a blocked one is withheld (empty text, no logprobs, finish `content_filter`); a
        redacted one has its spans replaced (and its logprobs dropped: they would spell the original)."""
        for choice in choices.values():
            outcome = check_all(self.output_guards, choice.text, "output")
            if outcome.blocked is not None:
                _log_block(outcome.blocked)
                choice.text, choice.finish_reason = "", CONTENT_FILTER
            elif outcome.spans:
                choice.text = outcome.redacted
            else:
                continue
            choice.logprobs, choice.top_logprobs = [], []

    async def filter_stream(self, outputs: AsyncIterator[RequestOutput], n: int) -> AsyncIterator[RequestOutput]:
        """`outputs` with each choice's text checked as it comes; once every choice is finished or blocked the
        request is closed (aborted, its blocks freed) even if the engine would have generated more."""
        streams = [_ChoiceStream(self) for _ in range(n)]
        try:
            async for output in outputs:
                deltas = [d for d in (streams[d.index].push(d) for d in output.deltas) if d is not None]
                yield dataclasses.replace(output, deltas=deltas)
                if not output.finished and all(s.done for s in streams):
                    return  # every choice is blocked or finished: stop generating for nobody
        finally:
            await outputs.aclose()


class _ChoiceStream:
    """One choice's streamed text: what came, what went out (in the original text's coordinates)."""

    def __init__(self, guards: ServerGuards):
        self.guards = guards
        self.text = ""
        self.released = 0
        self.done = False

    def push(self, delta: SequenceDelta) -> SequenceDelta | None:
        if self.done:
            return None
        self.text += delta.text
        final = delta.finish_reason is not None
        window = self.guards.stream_window
        if window is None and not final:
            return _with_text(delta, "")  # held until the reply is whole; tokens and logprobs still go out
        outcome = check_all(self.guards.output_guards, self.text, "output")
        if outcome.blocked is not None:
            _log_block(outcome.blocked)
            self.done = True
            return SequenceDelta(delta.index, delta.token_ids, "", CONTENT_FILTER)
        end = len(self.text) if final else max(self.released, len(self.text) - (window or 0))
        for span in outcome.spans:  # never cut through a hit: it goes out whole, redacted
            if span.start < end < span.end:
                end = max(self.released, span.start)
        piece = redact(
            self.text[self.released : end],
            [
                Span(s.start - self.released, s.end - self.released, s.label)
                for s in outcome.spans
                if self.released <= s.start and s.end <= end
            ],
        )
        self.released = end
        self.done = final
        return _with_text(delta, piece)


def _with_text(delta: SequenceDelta, text: str) -> SequenceDelta:
    return dataclasses.replace(delta, text=text)


def _log_block(verdict) -> None:
    logger.warning("guard %s blocked a reply (%s): %s", verdict.guard, verdict.category, verdict.reason)


def guarded_outputs(server, outputs: AsyncIterator[RequestOutput], n: int) -> AsyncIterator[RequestOutput]:
    """`outputs` through the server's output guards, or unchanged when it has none."""
    guards: ServerGuards | None = server.guards
    return outputs if guards is None or not guards.output_guards else guards.filter_stream(outputs, n)


def guard_messages(server, messages: Sequence[Any]) -> None:
    """Refuse the request (400) when an input guard blocks its messages (pydantic models or mappings)."""
    guards: ServerGuards | None = server.guards
    if guards is not None:
        guards.check_messages([m if isinstance(m, Mapping) else m.model_dump() for m in messages])


def guard_prompts(server, prompts: Sequence[str | Sequence[int]]) -> None:
    """Refuse a completions request (400) when an input guard blocks one of its prompts (token ids decoded)."""
    guards: ServerGuards | None = server.guards
    if guards is not None:
        tokenizer = server.engine.tokenizer
        texts = [p if isinstance(p, str) else tokenizer.decode(list(p), skip_special_tokens=False) for p in prompts]
        guards.check_prompts(texts)


def guard_choices(server, choices: dict[int, R.Choice]) -> None:
    guards: ServerGuards | None = server.guards
    if guards is not None and guards.output_guards:
        guards.filter_choices(choices)
