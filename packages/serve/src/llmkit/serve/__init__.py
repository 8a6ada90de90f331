"""llmkit-serve: the serving engine (paged, prefix-cached KV cache, continuous batching, speculative
decoding, structured outputs) and its OpenAI-compatible server. See docs/serve.md."""

from .async_engine import AsyncEngine, EngineOverloaded, RequestFailed
from .engine import Engine, EngineConfig, EngineStats
from .model_runner import ModelRunner
from .outputs import RequestOutput, RequestTiming, SequenceDelta
from .runner_output import RunnerOutput, SampledTokens
from .scheduler import FirstComeFirstServed, Scheduler, SchedulingPolicy
from .scheduler_output import ScheduledSequence, SchedulerOutput
from .sequence import Sequence, SequenceStatus
from .speculative import SpeculativeConfig

__all__ = [
    "AsyncEngine",
    "Engine",
    "EngineConfig",
    "EngineOverloaded",
    "EngineStats",
    "FirstComeFirstServed",
    "ModelRunner",
    "RequestFailed",
    "RequestOutput",
    "RequestTiming",
    "RunnerOutput",
    "SampledTokens",
    "ScheduledSequence",
    "Scheduler",
    "SchedulerOutput",
    "SchedulingPolicy",
    "Sequence",
    "SequenceDelta",
    "SequenceStatus",
    "SpeculativeConfig",
]
