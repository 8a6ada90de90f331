"""What the engine does when a step raises: find the requests that make it fail and end only those.

The failed step is undone: its sequences give up their blocks and wait to be recomputed, as after a
preemption (greedy output does not change). Then each of its requests runs alone until it yields a
token; a request whose solo run raises ends with finish reason "error" (blocks freed,
`RequestOutput.error` set) and every other request goes on. A step that failed after it began to
hand tokens to sequences cannot be undone; then the requests of that batch end, and no others.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .outputs import RequestOutput
from .scheduler import ScheduledBatch

if TYPE_CHECKING:
    from .engine import Engine, _Request

logger = logging.getLogger(__name__)

# A request in this many failed steps whose solo run could not take place (no free blocks) ends too,
# so that a failure no solo run reproduces cannot repeat forever.
MAX_INCONCLUSIVE_FAILURES = 3


def isolate_failure(engine: Engine, batch: ScheduledBatch, error: Exception) -> list[RequestOutput]:
    """Handle a step that raised `error` while running `batch`; returns the outputs to report."""
    request_ids = list(dict.fromkeys(seq.request_id for seq, _ in batch.sequences))
    logger.warning("an engine step over %d request(s) failed: %r", len(request_ids), error)
    if not engine.outputs.replayable:
        return [fail_request_with_error(engine, r, error) for r in request_ids if r in engine.requests]
    engine.scheduler.requeue([seq for seq, _ in batch.sequences])
    if len(request_ids) == 1:
        return [fail_request_with_error(engine, request_ids[0], error)]
    outputs: list[RequestOutput] = []
    for request_id in request_ids:
        request = engine.requests.get(request_id)
        if request is None:
            continue
        try:
            solo, conclusive = _run_alone(engine, request)
        except Exception as solo_error:
            outputs.append(fail_request_with_error(engine, request_id, solo_error))
            continue
        outputs += solo
        if not conclusive:
            request.inconclusive_failures += 1
            if request.inconclusive_failures >= MAX_INCONCLUSIVE_FAILURES:
                outputs.append(fail_request_with_error(engine, request_id, error))
    return outputs


def _run_alone(engine: Engine, request: _Request) -> tuple[list[RequestOutput], bool]:
    """Step `request` with nothing else scheduled until each of its sequences has a new token (True),
    or until it cannot be scheduled alone now (False)."""
    sequences = [s for s in request.sequences if not s.is_finished]
    produced = {id(s): len(s.output_token_ids) for s in sequences}
    budget = engine.scheduler.max_num_batched_tokens
    max_steps = sum(-(-s.num_tokens // budget) for s in sequences) + 2
    outputs: list[RequestOutput] = []
    with engine.scheduler.only(sequences):
        for _ in range(max_steps):
            batch = engine.scheduler.schedule()
            if batch.is_empty:
                return outputs, False
            outputs += engine.run_batch(batch)
            if all(s.is_finished or len(s.output_token_ids) > produced[id(s)] for s in sequences):
                return outputs, True
    return outputs, False


def fail_request_with_error(engine: Engine, request_id: str, error: Exception) -> RequestOutput:
    """End a request because a step failed on it: finish reason "error", blocks freed, error reported."""
    logger.error("request %s ended by a failed engine step", request_id, exc_info=error)
    engine.structured.forget(request_id)
    request = engine.requests[request_id]
    for seq in request.sequences:
        if not seq.is_finished:
            seq.output.finish_reason = "error"
            engine.scheduler.finish(seq)
    report = engine.outputs.report_failure(request_id)
    report.error = f"{type(error).__name__}: {error}"
    return report
