"""`OutputProcessor`: the last part of a step's update. Appends a sequence's new tokens to its output
stream (stop tokens and strings, length, incremental detokenization, logprobs) and builds each
request's `RequestOutput`, forgetting a request once it has finished."""

from __future__ import annotations

import time

from .outputs import RequestOutput, SequenceDelta
from .request import Request
from .runner_output import SampledTokens
from .sequence import Sequence


class OutputProcessor:
    def __init__(self, requests: dict[str, Request]) -> None:
        self.requests = requests  # the scheduler's registry of requests that have not been reported finished

    def append(self, seq: Sequence, tokens: list[int], sampled: SampledTokens, now: float) -> SequenceDelta:
        """Append tokens until the sequence finishes; what follows a stop is dropped."""
        text, kept, logprobs, tops = "", [], [], []
        wants = seq.params.logprobs or seq.params.top_logprobs
        for k, token in enumerate(tokens):
            text += seq.output.append(token)
            kept.append(token)
            if wants and sampled.logprobs is not None:
                logprobs.append(sampled.logprobs[k])
                if sampled.top_logprobs is not None:
                    tops.append(sampled.top_logprobs[k])
            if seq.output.finished:
                break
        seq.logprobs.extend(logprobs)
        seq.top_logprobs.extend(tops)
        seq.first_token_time = seq.first_token_time or now
        seq.last_token_time = now
        return SequenceDelta(
            seq.index,
            kept,
            text,
            seq.output.finish_reason,
            logprobs if wants else None,
            tops if seq.params.top_logprobs else None,
        )

    def report(self, request_id: str, deltas: list[SequenceDelta], now: float) -> RequestOutput:
        request = self.requests[request_id]
        timing = request.timing
        timing.first_token = timing.first_token or now
        timing.num_output_tokens += sum(len(d.token_ids) for d in deltas)
        finished = request.finished
        if finished:
            timing.finished = now
            del self.requests[request_id]
        cached = request.sequences[0].num_cached_tokens
        output = RequestOutput(request_id, request.prompt_token_ids, deltas, finished, cached, timing)
        output.samples_cached_tokens = [s.num_cached_tokens for s in request.sequences]
        scored = [s for s in request.sequences if len(s.prompt_logprobs or ()) == len(request.prompt_token_ids)]
        if scored:  # each sequence of the request scores the same prompt; take one that has finished it
            output.prompt_logprobs = scored[0].prompt_logprobs
            output.prompt_top_logprobs = scored[0].prompt_top_logprobs
        return output

    def report_ended(self, request_id: str) -> RequestOutput:
        """The final report of a request that ended outside a step's tokens (a grammar that failed to
        compile, a step that failed on it)."""
        request = self.requests[request_id]
        deltas = [SequenceDelta(s.index, [], "", s.output.finish_reason) for s in request.sequences]
        return self.report(request_id, deltas, time.monotonic())
