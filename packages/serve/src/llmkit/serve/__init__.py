"""llmkit-serve: the serving engine (paged, prefix-cached KV cache, continuous batching, speculative
decoding, structured outputs) and its OpenAI-compatible server. See docs/serve.md."""

from .async_engine import AsyncEngine, EngineOverloaded, RequestFailed
from .block_manager import BlockManager
from .engine import Engine, EngineConfig, EngineStats
from .failure_isolation import FailureIsolation
from .model_runner import ModelRunner
from .output_processor import OutputProcessor
from .outputs import RequestOutput, RequestTiming, SequenceDelta
from .request import Request
from .runner_output import RunnerOutput, SampledTokens
from .scheduler import FirstComeFirstServed, Scheduler, SchedulingPolicy
from .scheduler_output import ScheduledSequence, SchedulerOutput
from .sequence import Sequence, SequenceStatus
from .speculative import Proposal, SpeculativeConfig, Speculator

__all__ = [
    "AsyncEngine",
    "BlockManager",
    "Engine",
    "EngineConfig",
    "EngineOverloaded",
    "EngineStats",
    "FailureIsolation",
    "FirstComeFirstServed",
    "ModelRunner",
    "OutputProcessor",
    "Proposal",
    "Request",
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
    "Speculator",
]
