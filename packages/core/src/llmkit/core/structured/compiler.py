"""What a request asks for (`StructuredOutput`) and `GrammarCompiler`, which compiles it once per content
hash and can do so on a background thread so that decoding never waits for a compilation."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from .compiled import CompiledGrammar, compile_grammar_ir
from .gbnf import parse_gbnf
from .ir import Grammar, GrammarError, Ref
from .json_schema import JsonOptions, compile_json_schema
from .json_values import ANY_VALUE, add_any_value_rules, whitespace
from .regex import regex_to_ir
from .tool_calls import tool_call_grammar

logger = logging.getLogger(__name__)

KINDS = ("json_schema", "json_object", "regex", "grammar", "tool_calls")


@dataclasses.dataclass(frozen=True)
class StructuredOutput:
    """kind: json_schema (source = the schema), json_object (any JSON object), regex (source = the
    pattern, matched against the whole output), grammar (source = GBNF text) or tool_calls (source =
    {"tools", "tool_choice", "format", "parallel"}, see tool_calls.py)."""

    kind: str
    source: Any = None
    options: JsonOptions = dataclasses.field(default_factory=JsonOptions)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GrammarError(f"structured output kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def key(self) -> str:
        """Content hash: equal keys compile to the same grammar."""
        try:
            source = json.dumps(self.source, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as err:
            raise GrammarError(f"the {self.kind} source is not JSON-serializable: {err}") from None
        text = f"{self.kind}\0{source}\0{dataclasses.astuple(self.options)}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def to_grammar(spec: StructuredOutput) -> Grammar:
    if spec.kind == "json_schema":
        return compile_json_schema(spec.source, spec.options)
    if spec.kind == "json_object":
        return compile_json_schema({"type": "object"}, spec.options)
    if spec.kind == "regex":
        return Grammar({"root": regex_to_ir(spec.source)}, "root")
    if spec.kind == "tool_calls":
        if not isinstance(spec.source, dict):
            raise GrammarError("a tool_calls source must be an object with tools and tool_choice")
        return tool_call_grammar(spec.source)
    return parse_gbnf(spec.source)


def compile_structured(spec: StructuredOutput) -> CompiledGrammar:
    """Compile without caching; GrammarError for anything unsupported or malformed."""
    try:
        return compile_grammar_ir(to_grammar(spec), f"{spec.kind} {spec.key[:12]}")
    except RecursionError:
        raise GrammarError(f"the {spec.kind} is nested too deeply to compile") from None


def any_json_grammar(options: JsonOptions = JsonOptions()) -> Grammar:
    ws = whitespace(options)
    rules: dict = {}
    add_any_value_rules(rules, ws)
    rules["root"] = Ref(ANY_VALUE)  # whitespace between tokens, none around the value
    return Grammar(rules, "root")


class GrammarCompiler:
    """An LRU cache of compiled grammars (and of compile errors) keyed by content hash."""

    def __init__(
        self,
        max_entries: int = 256,
        workers: int = 1,
        prepare: Callable[[CompiledGrammar], None] | None = None,
        warm: Callable[[CompiledGrammar], None] | None = None,
    ):
        """`prepare`, if given, runs on the compiler's thread after each successful compilation, before the
        grammar is handed out (the engine builds what a matcher's first mask needs there). `warm`, if given,
        runs after it is handed out, on a thread of its own, so that neither the request nor the next
        compilation waits for it (the engine classifies every state's tokens there)."""
        self.max_entries = max_entries
        self.prepare = prepare
        self.warm = warm
        self._entries: collections.OrderedDict[str, CompiledGrammar | GrammarError] = collections.OrderedDict()
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="llmkit-grammar")
        self._warmer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmkit-grammar-warm")
        self.hits = self.misses = 0

    def cached(self, spec: StructuredOutput) -> CompiledGrammar | None:
        """The compiled grammar if it is ready (raises its GrammarError if it failed), else None."""
        with self._lock:
            entry = self._entries.get(spec.key)
            if entry is None:
                return None
            self._entries.move_to_end(spec.key)
        if isinstance(entry, GrammarError):
            raise entry
        return entry

    def compile(self, spec: StructuredOutput) -> CompiledGrammar:
        return self.submit(spec).result()

    def submit(self, spec: StructuredOutput) -> concurrent.futures.Future:
        """A future of the compiled grammar; cached results and compilations in flight are shared."""
        key = spec.key
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self.hits += 1
                self._entries.move_to_end(key)
                future: concurrent.futures.Future = concurrent.futures.Future()
                if isinstance(entry, GrammarError):
                    future.set_exception(entry)
                else:
                    future.set_result(entry)
                return future
            if key in self._pending:
                self.hits += 1
                return self._pending[key]
            self.misses += 1
            future = self._executor.submit(self._compile, spec, key)
            self._pending[key] = future
        if self.warm is not None:
            future.add_done_callback(self._start_warming)
        return future

    def _start_warming(self, compiled: concurrent.futures.Future) -> None:
        if compiled.cancelled() or compiled.exception() is not None:
            return
        with contextlib.suppress(RuntimeError):  # shut down meanwhile: nothing left to warm for
            self._warmer.submit(self.warm, compiled.result()).add_done_callback(_log_warm_failure)

    def _compile(self, spec: StructuredOutput, key: str) -> CompiledGrammar:
        try:
            result: CompiledGrammar | GrammarError = compile_structured(spec)
            if self.prepare is not None:
                self.prepare(result)
        except GrammarError as err:
            result = err
        except BaseException:
            with self._lock:
                self._pending.pop(key, None)
            raise
        with self._lock:
            self._pending.pop(key, None)
            self._entries[key] = result
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        if isinstance(result, GrammarError):
            raise result
        return result

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._warmer.shutdown(wait=False, cancel_futures=True)


def _log_warm_failure(warming: concurrent.futures.Future) -> None:
    """Warming only saves first visits later (masks are computed on demand either way), so a failure is
    logged, not raised into a request that did not ask for it."""
    if not warming.cancelled() and warming.exception() is not None:
        logger.error("warming a compiled grammar failed", exc_info=warming.exception())
