"""Structured outputs on the default model (49,152-token vocabulary) and the schema set of
benchmarks/structured_schemas.json, in one run: the time to the first mask of a new schema (compile, a
matcher and its first mask; and the compiler's cache), per-token mask time
(median, p99) for llmkit's native matcher next to xgrammar, llguidance and outlines-core driven on the
same schemas and token sequences, the warm per-call floor of each library's fill, and constrained vs
unconstrained decode tokens/s in the engine.

    python benchmarks/structured.py [--batch 6] [--max-tokens 200] [--reference-schemas 3] [--repeats 30]
    python benchmarks/structured.py --first-mask-only [--passes 5] [--order rotate|blocks] [--no-peers]   # minutes

`--first-mask-only` times only what a request with a new schema waits for (llmkit and every peer,
interleaved schema by schema in each pass, so that the machine's load meets them alike, with the first
library rotating so that each one runs after every other alike — a library that always ran right after
outlines-core's 100+ ms compile would always meet cold caches; `--order blocks` runs each library's whole
suite back to back instead; the "fastest pass" columns take each schema's fastest pass, which a loaded
machine disturbs least) and prints
where llmkit's time goes (IR, NFA, native compile, index, matcher + first fill; medians over passes).

Token sequences are the default model's own constrained outputs at temperature 0. Each library gets a
fresh matcher per sequence over a cold-compiled grammar, so lazily built mask caches (llguidance) are
paid inside the per-token times, as xgrammar and outlines-core pay theirs at compile. llmkit classifies a
state's tokens on its first visit (what a new schema's first mask pays) and the engine classifies every
state next on a warm thread while decoding goes on: the llmkit rows replay on a fully classified index
(`prepare`), except the "first visit" row, which replays on an index nothing has classified beyond the
first mask.
Each library fills its natural bitmask: llmkit a `TokenBitmask` (memory the native module owns, read with
no DLPack export; a second row fills a torch tensor), xgrammar a torch tensor, outlines-core a raw pointer.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from structured_peers import first_mask, make_peers, timed

from llmkit.core import SamplingParams, load_pretrained
from llmkit.core.structured import (
    GrammarCompiler,
    ReferenceMatcher,
    StructuredOutput,
    compile_structured,
    vocabulary_index,
    words_for,
)
from llmkit.kernels.grammar_matcher import NativeGrammarMatcher, TokenBitmask
from llmkit.serve.engine import Engine
from llmkit.serve.structured import manager

SUITE = json.loads((Path(__file__).parent / "structured_schemas.json").read_text())
SYSTEM = "You are a helpful assistant. You answer with JSON only."


NATIVE = "llmkit (native)"  # filling a TokenBitmask, the memory the native module owns
NATIVE_TENSOR = "llmkit (native), torch tensor bitmask"  # the same fill, paying torch's DLPack export per call
NATIVE_LAZY = "llmkit (native), states classified on first visit"  # no warm thread: first visits in the times
NATIVE_CLASSIFIED = "llmkit (native), + every state classified (warm thread)"  # what the warm thread finishes


def torch_bitmask(vocab) -> torch.Tensor:
    return torch.zeros(1, words_for(vocab.vocab_size), dtype=torch.int32)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def prompts_for(engine: Engine, names: list[str]) -> list[list[int]]:
    return [
        engine.pretrained.chat_prompt(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": SUITE[n]["prompt"] + " Reply in JSON."}]
        )
        for n in names
    ]


def specs(names: list[str]) -> list[StructuredOutput]:
    return [StructuredOutput("json_schema", SUITE[n]["schema"]) for n in names]


def decode_rate(engine: Engine, prompts, params, structured) -> tuple[float, int, list]:
    started = time.perf_counter()
    outputs = engine.generate(prompts, params, progress=False, structured=structured)
    seconds = time.perf_counter() - started
    tokens = sum(len(o.completions[0].token_ids) for o in outputs)
    return tokens / seconds, tokens, outputs


def end_to_end(engine: Engine, names: list[str], max_tokens: int) -> list[tuple[str, float, int]]:
    prompts = prompts_for(engine, names)
    greedy = SamplingParams(temperature=0, max_tokens=max_tokens)
    rows = []
    engine.generate(prompts, greedy, progress=False, structured=specs(names))  # warm: grammars compiled, masks cached
    rate, tokens, outputs = decode_rate(engine, prompts, greedy, specs(names))
    lengths = [len(o.completions[0].token_ids) for o in outputs]
    rows.append(("constrained (masks + jump-forward)", rate, tokens))
    saved_limit = manager.MAX_JUMP_FORWARD
    manager.MAX_JUMP_FORWARD = 0
    rate, tokens, _ = decode_rate(engine, prompts, greedy, specs(names))
    manager.MAX_JUMP_FORWARD = saved_limit
    rows.append(("constrained (masks only)", rate, tokens))
    same_length = [SamplingParams(temperature=0, max_tokens=n, ignore_eos=True) for n in lengths]
    rate, tokens, _ = decode_rate(engine, prompts, same_length, None)
    rows.append(("unconstrained (same token counts)", rate, tokens))
    return rows


def mask_times(fill, bitmask, accept, tokens: list[int]) -> tuple[list[float], bool]:
    """Microseconds per `fill(bitmask)` along the sequence; False if the library refused a token."""
    times = []
    for token in tokens:
        started = time.perf_counter()
        fill(bitmask)
        times.append((time.perf_counter() - started) * 1e6)
        if not accept(token):
            return times, False
    return times, True


def warm_floor(fill, bitmask, accept, tokens: list[int], repeats: int) -> list[float]:
    """Per step, the fastest of `repeats` fills (µs): the cost of the call itself with warm caches."""
    floors = []
    for token in tokens:
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            fill(bitmask)
            best = min(best, time.perf_counter() - started)
        floors.append(best * 1e6)
        accept(token)
    return floors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=6, help="requests decoded together in the end-to-end part")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--reference-schemas", type=int, default=3, help="schemas timed with the Python reference")
    parser.add_argument("--passes", type=int, default=3, help="cold compile + replay passes per library and schema")
    parser.add_argument("--repeats", type=int, default=30, help="fills per step in the warm-floor table")
    parser.add_argument(
        "--first-mask-only", action="store_true", help="only the time to the first mask of a new schema (minutes)"
    )
    parser.add_argument(
        "--python-compiler",
        action="store_true",
        help="with --first-mask-only: compile with the Python reference of op grammar_tables (the compiler before 2026-12-07)",
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="with --first-mask-only: llmkit alone, no peer runs between its compiles (its floor on a quiet box)",
    )
    parser.add_argument(
        "--order",
        choices=("rotate", "blocks"),
        default="rotate",
        help="with --first-mask-only: 'rotate' interleaves the libraries schema by schema, the first one rotating "
        "(each library follows every other alike); 'blocks' runs each library's whole suite back to back",
    )
    args = parser.parse_args()
    if args.first_mask_only:
        first_mask_only(args.passes, args.python_compiler, args.no_peers, args.order)
        return
    console = Console(width=150)
    torch.set_num_threads(torch.get_num_threads())
    pretrained = load_pretrained("smollm2-135m-instruct")
    tokenizer = pretrained.tokenizer
    vocab_size = pretrained.config.vocab_size
    vocab, trie_seconds = timed(vocabulary_index, tokenizer, vocab_size)
    engine = Engine(pretrained, kv_cache_memory="1GiB", max_num_seqs=64)
    names = list(SUITE)

    # The token sequences every library replays: the model's constrained greedy outputs.
    outputs = engine.generate(
        prompts_for(engine, names),
        SamplingParams(temperature=0, max_tokens=args.max_tokens),
        progress=False,
        structured=specs(names),
    )
    sequences = {n: o.completions[0].token_ids for n, o in zip(names, outputs, strict=True)}
    sequences = {n: [t for t in s if t not in tokenizer.eos_token_ids] for n, s in sequences.items()}

    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend, eos_token=tokenizer.eos_token)
    peers, missing = make_peers(hf, vocab.token_bytes, vocab_size, list(tokenizer.eos_token_ids))

    # Each pass compiles every schema cold for every library (timed to its first mask) and replays its
    # sequence on a fresh matcher
    # (so each library meets its index as it comes out of compilation, as in serving); the tables pool
    # the passes. llmkit's first mask = compile + index + first fill; "+ every state classified" adds
    # `prepare`; cached = the compiler's cache + a matcher.
    compile_ms: dict[str, tuple[list[float], list[float]]] = {}
    masks_us: dict[str, dict[str, list[float]]] = {}
    compiled_by: dict[str, dict[str, object]] = {}
    refused: dict[str, set[str]] = {}
    unsupported: dict[str, set[str]] = {}
    cache = GrammarCompiler()

    def record(label: str, name: str, times: list[float], completed: bool) -> None:
        masks_us.setdefault(label, {}).setdefault(name, []).extend(times)
        if not completed:
            refused.setdefault(label, set()).add(name)

    for _ in range(args.passes):
        for label, new_bitmask in (
            (NATIVE, lambda: TokenBitmask(1, vocab_size)),
            (NATIVE_TENSOR, lambda: torch_bitmask(vocab)),
            (NATIVE_LAZY, lambda: TokenBitmask(1, vocab_size)),
        ):
            cold, warm = compile_ms.setdefault(label, ([], []))
            classified = compile_ms.setdefault(NATIVE_CLASSIFIED, ([], []))[0]
            for name in names:
                # What a request with a new schema waits for: compile, the index, a matcher, its first mask.
                spec = StructuredOutput("json_schema", SUITE[name]["schema"])
                started = time.perf_counter()
                grammar = compile_structured(spec)
                matcher = NativeGrammarMatcher(grammar, vocab)
                matcher.fill_next_token_bitmask(new_bitmask(), 0)
                first = time.perf_counter() - started
                cold.append(first * 1e3)
                if label != NATIVE_LAZY:  # the engine's warm thread classifies every state next
                    classified.append((first + timed(NativeGrammarMatcher.prepare, grammar, vocab)[1]) * 1e3)
                NativeGrammarMatcher.prepare(cache.compile(spec), vocab)  # as the engine's warm thread does
                warm.append(timed(lambda s=spec: NativeGrammarMatcher(cache.compile(s), vocab))[1] * 1e3)
                compiled_by.setdefault(label, {})[name] = grammar
                matcher = NativeGrammarMatcher(grammar, vocab)
                fill = lambda b, m=matcher: m.fill_next_token_bitmask(b, 0)  # noqa: E731 - called like the peers' fills
                record(label, name, *mask_times(fill, new_bitmask(), matcher.accept_token, sequences[name]))
        for peer in peers:
            cold, warm = compile_ms.setdefault(peer.name, ([], []))
            for name in names:
                schema = SUITE[name]["schema"]
                try:
                    compiled, seconds = first_mask(peer, schema)
                except Exception as err:
                    unsupported.setdefault(peer.name, set()).add(f"{name} ({type(err).__name__})")
                    continue
                cold.append(seconds * 1e3)
                compiled_by.setdefault(peer.name, {})[name] = compiled
                if peer.compile_cached is not None:
                    peer.compile_cached(schema)
                    warm.append(timed(peer.compile_cached, schema)[1] * 1e3)
                fill, bitmask, accept = peer.matcher(compiled)
                record(peer.name, name, *mask_times(fill, bitmask, accept, sequences[name]))
    for label in (NATIVE_TENSOR, NATIVE_LAZY):  # the same first masks as NATIVE's, pooled there
        compile_ms[NATIVE][0].extend(compile_ms.pop(label)[0])

    reference_label = f"llmkit (Python reference, {args.reference_schemas} schemas, one pass)"
    for name in names[: args.reference_schemas]:
        matcher = ReferenceMatcher(compile_structured(StructuredOutput("json_schema", SUITE[name]["schema"])), vocab)
        fill = matcher.fill_next_token_bitmask
        record(reference_label, name, *mask_times(fill, torch_bitmask(vocab), matcher.accept_token, sequences[name]))

    rows = end_to_end(engine, names[: args.batch], args.max_tokens)

    console.print(
        f"[bold]structured outputs[/] — {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads; vocabulary {vocab.vocab_size} tokens (trie built in {trie_seconds:.2f} s); "
        f"{len(names)} schemas, {sum(len(s) for s in sequences.values())} tokens replayed, {args.passes} passes"
    )
    table = Table(title="time to the first mask of a new schema (ms): compile + matcher + first fill")
    for column in ("library", "compiles", "median", "max", "cached median"):
        table.add_column(column)
    for library, (cold, warm) in compile_ms.items():
        table.add_row(
            library,
            str(len(cold)),
            f"{statistics.median(cold):.1f}",
            f"{max(cold):.1f}",
            f"{statistics.median(warm):.3f}" if warm else ("-" if library == NATIVE_CLASSIFIED else "no cache"),
        )
    console.print(table)
    # The sequences every peer completed (compiled and accepted to the end): the like-for-like columns.
    common = [
        n
        for n in names
        if all(n in t and n not in refused.get(lib, []) for lib, t in masks_us.items() if lib != reference_label)
    ]
    table = Table(
        title=f"per-token mask time (µs), same token sequences; 'common': the {len(common)} schemas every library completed"
    )
    for column in ("library", "masks", "median", "p99", "common median", "common p99", "refused a valid sequence"):
        table.add_column(column)
    for library, by_schema in masks_us.items():
        times = [t for steps in by_schema.values() for t in steps]
        shared = [t for n in common if n in by_schema for t in by_schema[n]] if library != reference_label else []
        table.add_row(
            library,
            str(len(times)),
            f"{statistics.median(times):.2f}",
            f"{percentile(times, 0.99):.1f}",
            f"{statistics.median(shared):.2f}" if shared else "-",
            f"{percentile(shared, 0.99):.1f}" if shared else "-",
            ", ".join(n for n in names if n in refused.get(library, ())) or "-",
        )
    console.print(table)
    console.print(floor_table(compiled_by, peers, common, sequences, vocab, args.repeats))
    for library, names_failed in unsupported.items():
        console.print(f"{library} could not compile: {', '.join(sorted(names_failed))}")
    for reason in missing.values():
        console.print(f"peer unavailable: {reason}")
    table = Table(title=f"engine decode, {args.batch} requests, greedy")
    for column in ("run", "tokens", "tokens/s", "vs unconstrained"):
        table.add_column(column)
    base = rows[-1][1]
    for label, rate, tokens in rows:
        table.add_row(label, str(tokens), f"{rate:.1f}", f"{100 * (rate / base - 1):+.1f}%")
    console.print(table)


def first_mask_only(passes: int, python_compiler: bool = False, no_peers: bool = False, order: str = "rotate") -> None:
    """Time to the first mask of a new schema for llmkit and the peers, schema by schema in each pass."""
    from llmkit.core.ops.dispatch import implementation
    from llmkit.core.structured import automata
    from llmkit.core.structured.compiled import IR_TABLES_OP, tables_from_nfas
    from llmkit.core.structured.compiler import to_grammar

    console = Console(width=150)
    pretrained = load_pretrained("smollm2-135m-instruct")
    tokenizer, vocab_size = pretrained.tokenizer, pretrained.config.vocab_size
    vocab = vocabulary_index(tokenizer, vocab_size)
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend, eos_token=tokenizer.eos_token)
    peers, missing = make_peers(hf, vocab.token_bytes, vocab_size, list(tokenizer.eos_token_ids))
    if no_peers:
        peers, missing = [], {}
    times: dict[str, list[float]] = {}
    fastest: dict[str, dict[str, float]] = {}  # library -> schema -> its fastest pass (ms): robust to load
    parts: dict[str, dict[str, list[float]]] = {}

    def record(library: str, name: str, ms: float) -> None:
        times.setdefault(library, []).append(ms)
        fastest.setdefault(library, {})[name] = min(ms, fastest.get(library, {}).get(name, ms))

    def llmkit_first_mask(name: str, item: dict) -> float:
        spec = StructuredOutput("json_schema", item["schema"])
        started = time.perf_counter()  # the same steps as compile_structured + a matcher + its first fill
        grammar_ir = to_grammar(spec)
        marks = [started, time.perf_counter()]
        if python_compiler:
            grammar = tables_from_nfas(automata.rule_nfas(grammar_ir), name)
        else:
            grammar = implementation(IR_TABLES_OP, "cpu")(grammar_ir, name)
        marks.append(time.perf_counter())
        NativeGrammarMatcher.prepare(grammar, vocab, classify=False)
        marks.append(time.perf_counter())
        NativeGrammarMatcher(grammar, vocab).fill_next_token_bitmask(TokenBitmask(1, vocab_size), 0)
        marks.append(time.perf_counter())
        for step, (start, end) in zip(step_names, itertools.pairwise(marks), strict=True):
            parts.setdefault(name, {}).setdefault(step, []).append((end - start) * 1e3)
        return (marks[-1] - started) * 1e3

    def peer_first_mask(peer):
        return lambda name, item: first_mask(peer, item["schema"])[1] * 1e3

    step_names = (
        "IR",
        "NFA + compile (Python)" if python_compiler else "NFA + compile (native)",
        "index",
        "matcher + first fill",
    )
    runners = [("llmkit (Python compiler)" if python_compiler else NATIVE, llmkit_first_mask)]
    runners += [(peer.name, peer_first_mask(peer)) for peer in peers]
    schemas = list(SUITE.items())
    if order == "blocks":  # each library compiles the whole suite with no other library in between
        schedule = [(runner, schema) for _ in range(passes) for runner in runners for schema in schemas]
    else:  # interleaved schema by schema; the first library rotates, so each follows every other alike
        schedule = [
            (runners[(turn + k) % len(runners)], schema)
            for turn, schema in enumerate(schema for _ in range(passes) for schema in schemas)
            for k in range(len(runners))
        ]
    for (library, run), (name, item) in schedule:
        try:
            record(library, name, run(name, item))
        except Exception:  # a peer that refuses a schema has no time for it
            if library == runners[0][0]:
                raise
    console.print(
        f"[bold]time to the first mask of a new schema[/] — {time.strftime('%Y-%m-%d')}, {len(SUITE)} schemas x "
        f"{passes} passes, order {order}, vocabulary {vocab.vocab_size} tokens, load average {os.getloadavg()[0]:.1f} at the end"
    )
    table = Table(title="ms per new schema: compile + matcher + first fill")
    columns = ("library", "compiles", "median", "p90", "max", "median / llguidance's", "fastest pass: median", "max",
               "fastest / llguidance's")  # fmt: skip
    for column in columns:
        table.add_column(column)
    reference = statistics.median(times["llguidance"]) if "llguidance" in times else None
    reference_best = statistics.median(fastest["llguidance"].values()) if "llguidance" in times else None
    for library, values in times.items():
        ratio = f"{statistics.median(values) / reference:.2f}" if reference else "-"
        best = list(fastest[library].values())  # per schema, its fastest pass
        best_ratio = f"{statistics.median(best) / reference_best:.2f}" if reference_best else "-"
        table.add_row(
            library, str(len(values)), f"{statistics.median(values):.2f}", f"{percentile(values, 0.9):.2f}",
            f"{max(values):.2f}", ratio, f"{statistics.median(best):.2f}", f"{max(best):.2f}", best_ratio,
        )  # fmt: skip
    console.print(table)
    table = Table(title="llmkit: where the time goes (ms, median over passes)")
    steps = list(next(iter(parts.values())))
    for column in ("schema", *steps, "total"):
        table.add_column(column)
    for name, by_step in parts.items():
        medians = [statistics.median(by_step[step]) for step in steps]
        table.add_row(name, *(f"{m:.2f}" for m in medians), f"{sum(medians):.2f}")
    console.print(table)
    for reason in missing.values():
        console.print(f"peer unavailable: {reason}")


def floor_table(compiled_by, peers, common: list[str], sequences, vocab, repeats: int) -> Table:
    """The warm per-call floor on the common schemas: the cost of each library's fill call itself."""

    def llmkit(name: str, bitmask):
        matcher = NativeGrammarMatcher(compiled_by[NATIVE][name], vocab)
        return (lambda b, m=matcher: m.fill_next_token_bitmask(b, 0)), bitmask, matcher.accept_token

    makers = {
        NATIVE: lambda name: llmkit(name, TokenBitmask(1, vocab.vocab_size)),
        NATIVE_TENSOR: lambda name: llmkit(name, torch_bitmask(vocab)),
    }
    for peer in peers:
        makers[peer.name] = lambda name, p=peer: p.matcher(compiled_by[p.name][name])
    table = Table(title=f"warm per-call floor (µs): fastest of {repeats} fills per step, {len(common)} common schemas")
    for column in ("library", "steps", "median", "p90"):
        table.add_column(column)
    for label, make in makers.items():
        floors = []
        for name in common:
            fill, bitmask, accept = make(name)
            floors += warm_floor(fill, bitmask, accept, sequences[name], repeats)
        table.add_row(label, str(len(floors)), f"{statistics.median(floors):.2f}", f"{percentile(floors, 0.9):.2f}")
    return table


if __name__ == "__main__":
    main()
