"""`Engine`: requests in, tokens out — continuous batching over a paged, prefix-cached KV cache."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import time
import uuid
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmkit.core import ops
from llmkit.core.errors import InvalidParameterError
from llmkit.core.generate import Completion, GenerationOutput
from llmkit.core.interp.steering import Steering, SteeringHandle
from llmkit.core.models.pretrained import Pretrained
from llmkit.core.models.store import DEFAULT_MODEL
from llmkit.core.sampling import SamplingParams
from llmkit.core.sampling.rng import derive_seed
from llmkit.core.structured import CompiledGrammar, StructuredOutput

from .activations import apply_default_activations
from .block_manager import BlockManager
from .failure_isolation import FailureIsolation
from .kv_budget import blocks_for_budget, parse_budget
from .model_runner import ModelRunner
from .outputs import RequestOutput, RequestTiming
from .parallel import TensorParallelError
from .parallel.workers import TensorParallelRanks, TensorParallelRunner, WorkerSpec, refuse_unsupported
from .request import Request
from .scheduler import Scheduler, SchedulingPolicy
from .sequence import Sequence
from .speculative import SpeculativeConfig, Speculator
from .structured import GrammarManager
from .vision import ImagePrompt, check_image_prompt, load_engine_model

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class EngineConfig:
    """Engine sizing. `kv_cache_memory` is bytes ("2GiB") or a fraction of free memory; `num_blocks` overrides it."""

    block_size: int = 16
    kv_cache_memory: str | float = 0.1
    kv_cache_dtype: str = "auto"
    num_blocks: int | None = None
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    enable_prefix_caching: bool = True
    speculative: SpeculativeConfig | None = None
    tensor_parallel_size: int = 1  # ranks that each hold 1/N of every layer (gloo, one machine; parallel/)
    tensor_parallel_timeout: float = 60.0  # seconds a collective may take before the engine fails


@dataclasses.dataclass
class EngineStats:
    running: int
    waiting: int
    num_blocks: int
    free_blocks: int
    kv_usage: float
    prefix_cache_queried_blocks: int
    prefix_cache_hit_blocks: int
    preemptions: int
    speculative_method: str | None = None
    draft_tokens_proposed: int = 0
    draft_tokens_accepted: int = 0
    speculative_proposals: int = 0

    @property
    def draft_acceptance_rate(self) -> float:
        return self.draft_tokens_accepted / self.draft_tokens_proposed if self.draft_tokens_proposed else 0.0

    @property
    def mean_accepted_length(self) -> float:
        return self.draft_tokens_accepted / self.speculative_proposals if self.speculative_proposals else 0.0

    @property
    def prefix_cache_hit_rate(self) -> float:
        return (
            self.prefix_cache_hit_blocks / self.prefix_cache_queried_blocks if self.prefix_cache_queried_blocks else 0.0
        )


def _require_native_quantized_kernels(kv_cache_dtype: str, device: str) -> None:
    """A quantized cache needs native attention: the torch reference dequantizes whole blocks into a
    full-precision copy on every call, so the engine refuses it unless LLMKIT_KERNELS=reference asks."""
    if kv_cache_dtype == "auto" or ops.forced_reference():
        return
    missing = [
        op
        for op in ("reshape_and_cache", "paged_attention_decode", "paged_attention_prefill")
        if ops.implementation(op, device) is ops.reference(op)
    ]
    if missing:
        raise InvalidParameterError(
            f"kv_cache_dtype={kv_cache_dtype!r} needs native kernels on {device}, but none is registered for "
            f"{', '.join(missing)}; install llmkit-kernels (pip install . at the repository root), or set "
            "LLMKIT_KERNELS=reference to run the slow torch reference on purpose"
        )


class Engine:
    """The serving engine. `generate()` for batch jobs; `add_request()` + `step()` to drive it yourself."""

    def __init__(
        self,
        model: str | Pretrained = DEFAULT_MODEL,
        *,
        dtype: str | torch.dtype | None = None,
        weights: str | None = None,
        quantize: str | None = None,
        activations: str | None = None,
        device: str = "cpu",
        chat_template: str | None = None,
        config: EngineConfig | None = None,
        policy: SchedulingPolicy | None = None,
        steering: Steering | None = None,
        **overrides,
    ):
        fields = {f.name for f in dataclasses.fields(EngineConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise InvalidParameterError(f"unknown engine option(s) {unknown}; EngineConfig has {sorted(fields)}")
        self.config = dataclasses.replace(config or EngineConfig(), **overrides)
        cfg = self.config
        if cfg.tensor_parallel_size != 1:
            refuse_unsupported(model, cfg, steering, device)
        self.pretrained, self.vision = load_engine_model(  # self.vision: a vision-language model's image side
            model,
            cfg,
            dtype=dtype,
            weights=weights,
            quantize=quantize,
            activations=activations,
            device=device,
            chat_template=chat_template,
        )
        if activations is None and not isinstance(model, Pretrained):
            # The default applies to the layers kept as stored; a dense copy (no native kernels) has none.
            apply_default_activations(self.pretrained.model)
        self.tensor_parallel: TensorParallelRanks | None = None
        self.fatal_error: TensorParallelError | None = None  # set when a rank failed: the engine is done
        device_obj = self.pretrained.model.device
        budget = None if cfg.num_blocks else parse_budget(cfg.kv_cache_memory, device_obj)  # errors before ranks start
        if cfg.tensor_parallel_size != 1:
            load_options = dict(
                dtype=dtype,
                weights=weights,
                quantize=quantize,
                activations=activations,
                device=device,
                chat_template=chat_template,
            )
            spec = WorkerSpec.for_engine(str(model), load_options, activations is None, cfg)
            self.tensor_parallel = TensorParallelRanks(self.pretrained, spec)
            self.pretrained = dataclasses.replace(self.pretrained, model=self.tensor_parallel.shard)
        model_config = self.pretrained.config  # a shard's under tensor parallelism: its KV cache holds 1/N
        self.tokenizer = self.pretrained.tokenizer
        num_blocks = cfg.num_blocks or blocks_for_budget(
            budget,
            model_config.num_layers,
            model_config.num_kv_heads,
            model_config.head_dim,
            cfg.block_size,
            cfg.kv_cache_dtype,
            self.pretrained.model.dtype,
        )
        _require_native_quantized_kernels(cfg.kv_cache_dtype, device_obj.type)
        caches = [
            ops.allocate(
                num_blocks,
                model_config.num_kv_heads,
                cfg.block_size,
                model_config.head_dim,
                cfg.kv_cache_dtype,
                self.pretrained.model.dtype,
                device_obj,
            )
            for _ in range(model_config.num_layers)
        ]
        self.kv_cache_bytes = sum(
            t.numel() * t.element_size()
            for c in caches
            for t in (c.key, c.value, c.key_scales, c.value_scales)
            if t is not None
        )
        if self.tensor_parallel is not None:
            self.tensor_parallel.start_caches(num_blocks)
        self.block_manager = BlockManager(num_blocks, cfg.block_size, cfg.enable_prefix_caching)
        self.structured = GrammarManager(self.tokenizer, model_config.vocab_size)
        # Steering vectors hook the model's residual stream for the engine's life (`self.steering.remove()`
        # detaches them); a native fused forward cannot run hooks, so every step takes the torch reference.
        self.steering = None if steering is None else SteeringHandle(self.pretrained.model, steering)
        if self.steering is not None:
            logger.info("llmkit: steering %s", self.steering.describe())
        if self.tensor_parallel is None:
            self.runner = ModelRunner(self.pretrained.model, caches, cfg.block_size, self.structured, self.vision)
        else:
            self.runner = TensorParallelRunner(
                self.pretrained.model, caches, cfg.block_size, self.structured, group=self.tensor_parallel.group
            )
            logger.info("llmkit: %s", self.describe_tensor_parallel())
        logger.info("llmkit: %s", ops.describe_forward(self.pretrained.model))
        self.speculator = (
            None
            if cfg.speculative is None
            else Speculator(cfg.speculative, self.runner, self.block_manager, self.pretrained, ModelRunner)
        )
        self.scheduler = Scheduler(
            self.block_manager,
            cfg.max_num_seqs,
            cfg.max_num_batched_tokens,
            policy,
            grammars=self.structured,
            speculator=self.speculator,
        )
        self.failures = FailureIsolation(self.scheduler, self.runner)
        # A native CPU forward: steps run under ops.native_step (torch's own ops on one thread, see its docs).
        self._native_cpu = device_obj.type == "cpu" and ops.forward_is_native(self.pretrained.model)
        self.requests: dict[str, Request] = self.scheduler.requests  # the scheduler's registry, read here
        self._seq_ids = itertools.count()

    @property
    def capacity_tokens(self) -> int:
        return self.block_manager.num_blocks * self.config.block_size

    @property
    def context_length(self) -> int:
        return self.pretrained.config.max_position_embeddings

    @property
    def vocab_size(self) -> int:
        return self.pretrained.config.vocab_size

    def check_token_ids(self, ids: SequenceOf[int]) -> None:
        """Refuse ids outside the model's vocabulary here, before they can fail a step (and its batch)."""
        vocab = self.vocab_size
        for position, token in enumerate(ids):
            if not 0 <= token < vocab:
                raise InvalidParameterError(
                    f"token id {token} at position {position} is outside the vocabulary [0, {vocab})"
                )

    def describe_tensor_parallel(self) -> str:
        """One line: ranks, backend, why the torch reference forward runs, and each rank's weight bytes."""
        tp = self.tensor_parallel
        per_rank = ", ".join(f"{b / 2**20:.2f}" for b in tp.weight_bytes)
        native = ops.implementation("paged_forward", self.pretrained.model.device.type)
        unsupported = getattr(native, "unsupported_reason", lambda _model: "no native forward is registered")
        return (
            f"tensor parallel {tp.group.size} ranks ({tp.describe_launch()}); the layer-by-layer forward runs (native "
            f"matmul and attention ops, all-reduces between) because the native fused forward cannot all-reduce "
            f"mid-layer (native_forward_reason: {unsupported(self.pretrained.model)}); weights per rank "
            f"[{per_rank}] MiB of {tp.full_weight_bytes / 2**20:.2f} MiB"
        )

    def close(self) -> None:
        """Stop the tensor-parallel workers, if any (the engine serves nothing afterwards)."""
        if self.tensor_parallel is not None:
            self.tensor_parallel.stop()

    def describe(self) -> str:
        """Startup lines: the forward (kernels, weight formats, activations) and the KV cache."""
        layer = self.pretrained.model.layers[0].self_attn.q_proj
        activations = getattr(layer, "activations", str(self.pretrained.model.dtype).removeprefix("torch."))
        parallel = "" if self.tensor_parallel is None else self.describe_tensor_parallel() + "\n"
        return parallel + (
            f"{ops.describe_forward(self.pretrained.model)}; activations {activations}\n"
            f"KV cache: {self.block_manager.num_blocks} blocks x {self.config.block_size} tokens = "
            f"{self.capacity_tokens} tokens, {self.kv_cache_bytes / 2**20:.1f} MiB ({self.config.kv_cache_dtype})"
        )

    def add_request(
        self,
        prompt: str | SequenceOf[int] | ImagePrompt,
        params: SamplingParams = SamplingParams(),
        request_id: str | None = None,
        extra_hash_key: bytes = b"",
        structured: StructuredOutput | CompiledGrammar | None = None,
    ) -> str:
        """Queue a request (n sequences); returns its id. Text prompts are tokenized as is. With `structured`
        every sequence's output follows that grammar; the request waits (WAITING_FOR_GRAMMAR) while its
        grammar compiles on a background thread. An `ImagePrompt` (from `self.vision.prompt`) carries images."""
        images = check_image_prompt(prompt, self.vision)
        ids = (
            self.tokenizer.encode(prompt, add_special_tokens=True)
            if isinstance(prompt, str)
            else [int(t) for t in (prompt.token_ids if images is not None else prompt)]
        )
        if self.fatal_error is not None:
            raise TensorParallelError(f"the engine stopped after a tensor-parallel failure: {self.fatal_error}")
        if not ids:
            raise InvalidParameterError("the prompt is empty")
        self.check_token_ids(ids)
        max_new = params.completion_budget(len(ids), self.context_length)  # ContextLengthError if no room
        if len(ids) + max_new > self.capacity_tokens:
            raise InvalidParameterError(
                f"the request needs up to {len(ids) + max_new} KV slots; the cache holds {self.capacity_tokens} "
                "(raise kv_cache_memory or lower max_tokens)"
            )
        request_id = request_id or uuid.uuid4().hex
        if request_id in self.requests:
            raise InvalidParameterError(f"request id {request_id!r} is already in use")
        grammar = None if structured is None else self.structured.resolve(structured)
        base_seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, (1,)))
        sequences = [
            Sequence(
                next(self._seq_ids),
                request_id,
                j,
                ids,
                params,
                derive_seed(base_seed, j),
                self.tokenizer,
                max_new,
                extra_hash_key,
                images,
            )
            for j in range(params.n)
        ]
        if grammar is not None and isinstance(grammar, CompiledGrammar):
            self.structured.attach(grammar, sequences)
            grammar = None
        self.scheduler.add_request(Request(request_id, ids, sequences, RequestTiming(time.monotonic()), 0, grammar))
        return request_id

    def abort(self, request_id: str) -> bool:
        """Stop a request now and free its blocks; False if it is unknown or already done."""
        return self.scheduler.abort_request(request_id)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> list[RequestOutput]:
        """One step, three calls with data flowing one way: `Scheduler.schedule() -> SchedulerOutput`,
        `ModelRunner.execute(SchedulerOutput) -> RunnerOutput`, `Scheduler.update_from_output(...) ->
        list[RequestOutput]`. A failure ends only the requests that cause it (see failure_isolation)."""
        started = time.perf_counter()
        output = self.scheduler.schedule()
        if output.is_empty:
            if self.scheduler.waiting_for_grammar:
                time.sleep(0.001)  # only requests waiting for their grammars: do not spin
            return self.scheduler.report_ended(output)
        try:
            with ops.native_step() if self._native_cpu else contextlib.nullcontext():
                outputs = self.failures.run(output)
        except TensorParallelError as error:
            return self._tensor_parallel_failed(error)
        if self.speculator is not None:
            self.speculator.step_seconds += time.perf_counter() - started
        return outputs

    def _tensor_parallel_failed(self, error: TensorParallelError) -> list[RequestOutput]:
        """A rank died or hung: every request ends with the error, the workers stop, the engine is done."""
        self.fatal_error = self.tensor_parallel.explain(error)
        logger.error("llmkit: %s; ending every request", self.fatal_error)
        self.tensor_parallel.stop(graceful=False)
        return [self.failures.fail(request_id, self.fatal_error) for request_id in list(self.scheduler.requests)]

    def generate(
        self,
        prompts: SequenceOf[str | SequenceOf[int]],
        params: SamplingParams | SequenceOf[SamplingParams] = SamplingParams(),
        progress: bool = True,
        structured: StructuredOutput
        | CompiledGrammar
        | SequenceOf[StructuredOutput | CompiledGrammar | None]
        | None = None,
    ) -> list[GenerationOutput]:
        """Run every prompt to completion; outputs in input order (core's `GenerationOutput`).
        `structured` constrains every prompt's output, or each prompt's when it is a list."""
        if isinstance(params, SamplingParams):
            params = [params] * len(prompts)
        if len(params) != len(prompts):
            raise InvalidParameterError(f"{len(prompts)} prompts but {len(params)} SamplingParams")
        if structured is None or isinstance(structured, StructuredOutput | CompiledGrammar):
            structured = [structured] * len(prompts)
        if len(structured) != len(prompts):
            raise InvalidParameterError(f"{len(prompts)} prompts but {len(structured)} structured outputs")
        ids = [
            self.add_request(prompt, p, structured=g) for prompt, p, g in zip(prompts, params, structured, strict=True)
        ]
        sequences = {request_id: self.requests[request_id].sequences for request_id in ids}
        prompt_ids = {request_id: self.requests[request_id].prompt_token_ids for request_id in ids}
        columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task("requests", total=len(ids))
            while self.has_unfinished():
                for output in self.step():
                    if output.finished:
                        bar.advance(task)
        return [
            GenerationOutput(
                prompt_ids[request_id],
                [
                    Completion(
                        s.output_token_ids,
                        s.output.text,
                        s.output.finish_reason or "length",
                        s.logprobs if s.params.logprobs or s.params.top_logprobs else None,
                        s.top_logprobs if s.params.top_logprobs else None,
                        s.num_cached_tokens,
                    )
                    for s in sequences[request_id]
                ],
                sequences[request_id][0].prompt_logprobs,
            )
            for request_id in ids
        ]

    def update_weights(self, tensors: Mapping[str, torch.Tensor] | None = None) -> None:
        """Load new weights (names as in `LlamaModel.state_dict()`), or note that shared weights changed
        in place; either way cached prefix blocks are stale and are dropped."""
        if self.tensor_parallel is not None and tensors is not None:
            raise InvalidParameterError("update_weights is not supported with tensor parallelism yet")
        if tensors is not None:
            model = self.pretrained.model
            known = dict(model.named_parameters())
            unknown = sorted(set(tensors) - set(known))
            if unknown:
                raise InvalidParameterError(f"update_weights: unknown parameters {unknown[:3]}")
            with torch.no_grad():
                for name, value in tensors.items():
                    if value.shape != known[name].shape:
                        raise InvalidParameterError(
                            f"update_weights: {name} has shape {tuple(value.shape)}, expected {tuple(known[name].shape)}"
                        )
                    known[name].copy_(value)
        self.block_manager.reset_prefix_cache()

    def stats(self) -> EngineStats:
        bm = self.block_manager
        return EngineStats(
            running=len(self.scheduler.running),
            waiting=len(self.scheduler.waiting),
            num_blocks=bm.num_blocks,
            free_blocks=bm.num_free_blocks,
            kv_usage=bm.usage,
            prefix_cache_queried_blocks=bm.queried_blocks,
            prefix_cache_hit_blocks=bm.hit_blocks,
            preemptions=self.scheduler.num_preemptions,
            **self._speculation_stats(),
        )

    def _speculation_stats(self) -> dict:
        if self.speculator is None:
            return {}
        stats = self.speculator.stats
        return {
            "speculative_method": self.speculator.config.method,
            "draft_tokens_proposed": stats.proposed,
            "draft_tokens_accepted": stats.accepted,
            "speculative_proposals": stats.proposals,
        }
