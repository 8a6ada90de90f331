"""What the engine does when a step raises: find the requests that make it fail and end only those.

`ModelRunner.execute` changes no sequence, so a step that failed there is undone: its sequences give
up their blocks and wait to be recomputed, as after a preemption (greedy output does not change).
Then each of its requests runs alone until it yields a token; a request whose solo run raises ends
with finish reason "error" (blocks freed, `RequestOutput.error` set) and every other request goes on.
A step that failed in `Scheduler.update_from_output`, after it began to hand tokens to sequences,
cannot be undone; then the requests of that batch end, and no others.
"""

from __future__ import annotations

import logging

from .model_runner import ModelRunner
from .outputs import RequestOutput
from .parallel import TensorParallelError
from .request import Request
from .scheduler import Scheduler
from .scheduler_output import SchedulerOutput

logger = logging.getLogger(__name__)

# A request in this many failed steps whose solo run could not take place (no free blocks) ends too,
# so that a failure no solo run reproduces cannot repeat forever.
MAX_INCONCLUSIVE_FAILURES = 3


class FailureIsolation:
    def __init__(self, scheduler: Scheduler, runner: ModelRunner) -> None:
        self.scheduler, self.runner = scheduler, runner

    def run(self, output: SchedulerOutput) -> list[RequestOutput]:
        """The three calls of a step after `schedule()`, each failure handled as described above."""
        try:
            result = self.runner.execute(output)
        except TensorParallelError:
            raise  # a rank is gone: no request is to blame, and no step can run (the engine ends them all)
        except Exception as error:  # nothing changed yet: undo the step, find the culprits
            return self.scheduler.report_ended(output) + self.after_forward_failed(output, error)
        try:
            return self.scheduler.update_from_output(output, result)
        except Exception as error:  # tokens were handed out: the batch's requests end
            logger.warning("an engine step over %d request(s) failed: %r", len(output.request_ids), error)
            ended = [self.fail(r, error) for r in output.ended_request_ids if r in self.scheduler.requests]
            return ended + [self.fail(r, error) for r in output.request_ids if r in self.scheduler.requests]

    def after_forward_failed(self, output: SchedulerOutput, error: Exception) -> list[RequestOutput]:
        request_ids = output.request_ids
        logger.warning("an engine step over %d request(s) failed: %r", len(request_ids), error)
        self.scheduler.requeue([scheduled.seq for scheduled in output.scheduled])
        if len(request_ids) == 1:
            return [self.fail(request_ids[0], error)]
        outputs: list[RequestOutput] = []
        for request_id in request_ids:
            request = self.scheduler.requests.get(request_id)
            if request is None:
                continue
            try:
                solo, conclusive = self._run_alone(request)
            except Exception as solo_error:
                outputs.append(self.fail(request_id, solo_error))
                continue
            outputs += solo
            if not conclusive:
                request.inconclusive_failures += 1
                if request.inconclusive_failures >= MAX_INCONCLUSIVE_FAILURES:
                    outputs.append(self.fail(request_id, error))
        return outputs

    def _run_alone(self, request: Request) -> tuple[list[RequestOutput], bool]:
        """Step `request` with nothing else scheduled until each of its sequences has a new token (True),
        or until it cannot be scheduled alone now (False)."""
        sequences = [s for s in request.sequences if not s.is_finished]
        produced = {id(s): len(s.output_token_ids) for s in sequences}
        scheduler = self.scheduler
        budget = scheduler.max_num_batched_tokens
        max_steps = sum(-(-s.num_tokens // budget) for s in sequences) + 2
        outputs: list[RequestOutput] = []
        with scheduler.only(sequences):
            for _ in range(max_steps):
                output = scheduler.schedule()
                if output.is_empty:
                    return outputs + scheduler.report_ended(output), False
                outputs += scheduler.update_from_output(output, self.runner.execute(output))
                if all(s.is_finished or len(s.output_token_ids) > produced[id(s)] for s in sequences):
                    return outputs, True
        return outputs, False

    def fail(self, request_id: str, error: Exception) -> RequestOutput:
        """End a request because a step failed on it: finish reason "error", blocks freed, error reported."""
        logger.error("request %s ended by a failed engine step", request_id, exc_info=error)
        for seq in self.scheduler.requests[request_id].sequences:
            if not seq.is_finished:
                seq.output.finish_reason = "error"
                self.scheduler.finish(seq)
        report = self.scheduler.output_processor.report_ended(request_id)
        report.error = f"{type(error).__name__}: {error}"
        return report
