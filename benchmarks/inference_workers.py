"""One engine's measurements for benchmarks/inference.py, run in a process of its own (own peak RSS).

    python inference_workers.py ENGINE SPEC.json OUT.json

ENGINE is `reference` (builds the prompts and core's float32 greedy ids), `llmkit:<mode>`,
`transformers` or `llamacpp`. Only the standard library is imported at the top: the llama.cpp
worker runs in a separate interpreter that has llama-cpp-python and numpy, and nothing of llmkit.
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

# benchmarks/ holds scripts named like packages (kernels.py shadows the `kernels` package transformers
# imports): keep this script's folder off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

TEXT = (
    "The history of computing is a story of abstraction layered on abstraction: relays became vacuum tubes, "
    "tubes became transistors, transistors became integrated circuits, and each layer let programmers forget "
    "the one below. Compilers hid machine code, operating systems hid the hardware, and networks hid distance. "
)
AGREEMENT_QUESTIONS = (
    "What is the capital of France?",
    "Write a Python function that reverses a string.",
    "List three colors.",
    "Explain in two sentences why the sky is blue.",
    "What is 17 times 23?",
)
# (weights, activation dtype) per llmkit mode; "as-stored" keeps the GGUF blocks and computes in float32.
LLMKIT_MODES = {  # mode: (weights, dtype, activations)
    "float32": ("float32", "float32", None),
    "bfloat16": ("bfloat16", "bfloat16", None),
    "as-stored": ("as-stored", None, "float32"),
    "as-stored-int8": ("as-stored", None, "int8"),  # what `llmkit serve` and Engine() run by default
}


class NotAvailable(Exception):
    """This build cannot run the asked-for configuration (reported as a row, not a failure)."""


def peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries the forking parent's peak across
    fork+exec into the child's ru_maxrss, so every engine would report at least the coordinator's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: KiB on most systems


def decode_rate(step, prompts: list[list[int]], new_tokens: int) -> float:
    """Tokens/s of the decode phase: `step(prompts, new_tokens)` yields (seconds, tokens made) after its
    first token of every sequence; the prefill and first token are excluded, like the issue's numbers."""
    stamps = list(step(prompts, new_tokens))
    seconds = stamps[-1][0] - stamps[0][0]
    tokens = sum(made for _, made in stamps[1:])
    return tokens / seconds


def measure(spec: dict, prefill_seconds, decode_steps, greedy_ids) -> dict:
    """The same protocol for every engine: warm-up, prefill, decode at batch 1 and 8, greedy ids."""
    repeats, new = spec["repeats"], spec["new_tokens"]
    for _ in decode_steps(spec["decode_prompts"][:1], 4):  # warm-up: first-call allocations, kernel selection
        pass  # (decode_steps is a generator: only iterating it runs the steps)
    prefill = [len(spec["prefill_ids"]) / prefill_seconds(spec["prefill_ids"]) for _ in range(repeats)]
    batch1 = [decode_rate(decode_steps, spec["decode_prompts"][:1], new) for _ in range(repeats)]
    batch8 = [decode_rate(decode_steps, spec["decode_prompts"], new) for _ in range(repeats)]
    return {
        "prefill_tok_s": statistics.median(prefill),
        "decode_b1_tok_s": statistics.median(batch1),
        "decode_b8_tok_s": statistics.median(batch8),
        "runs": {"prefill": prefill, "decode_b1": batch1, "decode_b8": batch8},
        "greedy_ids": greedy_ids([case["ids_in"] for case in spec["agreement"]], spec["agreement_tokens"]),
    }


def unique_tensor_bytes(module) -> int:
    """Bytes of a torch model's weights, each tensor counted once (tied weights): parameters, buffers and
    tensors held by other attributes (a weight kept as stored is an object with a `data` tensor)."""
    import torch

    tensors = list(module.parameters()) + list(module.buffers())
    for submodule in module.modules():
        for value in vars(submodule).values():
            inner = getattr(value, "data", None)
            if isinstance(inner, torch.Tensor) and not isinstance(value, torch.Tensor):
                tensors.append(inner)
    unique = {(t.data_ptr(), t.nbytes): t.nbytes for t in tensors}
    return sum(unique.values())


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


# --- reference: prompts and core's float32 greedy ids --------------------------------------------


def run_reference(spec: dict) -> dict:
    set_torch_threads(spec["threads"])
    from llmkit.core import SamplingParams, generate, load_pretrained

    smol = load_pretrained(spec["model"], dtype="float32", quiet=True)
    corpus = smol.tokenizer.encode(TEXT * 40)
    length, batch = spec["decode_prompt_tokens"], spec["batch"]
    if len(corpus) < spec["prefill_tokens"] + batch * 7 + length:
        raise ValueError("the benchmark text is too short for the asked prompt lengths")
    cases = []
    for question in AGREEMENT_QUESTIONS:
        text = smol.chat_template.render([{"role": "user", "content": question}])
        cases.append({"prompt": question, "ids_in": smol.tokenizer.encode(text)})
    params = SamplingParams(temperature=0, max_tokens=spec["agreement_tokens"], ignore_eos=True)
    outputs = generate(smol.model, smol.tokenizer, [c["ids_in"] for c in cases], params)
    for case, output in zip(cases, outputs, strict=True):
        case["ids_out"] = output.completions[0].token_ids
    return {
        "prefill_ids": corpus[: spec["prefill_tokens"]],
        "decode_prompts": [corpus[7 * i : 7 * i + length] for i in range(batch)],
        "agreement": cases,
    }


# --- llmkit Engine ---------------------------------------------------------------------------------


def load_llmkit(spec: dict, mode: str):
    """The model for one mode, through `load_pretrained(weights=...)` where this build has it."""
    from llmkit.core import load_pretrained
    from llmkit.serve import EngineConfig

    if mode not in LLMKIT_MODES:
        raise ValueError(f"unknown llmkit mode {mode!r}; modes: {', '.join(LLMKIT_MODES)}")
    weights, dtype, activations = LLMKIT_MODES[mode]
    if "activations" in inspect.signature(load_pretrained).parameters:
        return load_pretrained(spec["model"], weights=weights, dtype=dtype, activations=activations, quiet=True)
    if "weights" in inspect.signature(load_pretrained).parameters:
        return load_pretrained(spec["model"], dtype=dtype or "float32", weights=weights, quiet=True)
    if weights == "as-stored":
        has_field = "weights" in {f.name for f in __import__("dataclasses").fields(EngineConfig)}
        raise NotAvailable(
            "not available in this build: load_pretrained has no `weights` parameter"
            + (" (EngineConfig has a `weights` field, but the engine takes a loaded model here)" if has_field else "")
        )
    return load_pretrained(spec["model"], dtype=dtype or "float32", quiet=True)


def kernels_build() -> str | None:
    """First 12 hex digits of the native module's sha256: which build of llmkit.kernels ran."""
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("llmkit.kernels._C")
    if spec is None or spec.origin is None:
        return None
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:12]


def native_ops(device: str = "cpu") -> list[str]:
    from llmkit.core import ops

    return sorted(op for op in ops.dispatch._references if ops.implementation(op, device) is not ops.reference(op))


def run_llmkit(spec: dict, mode: str) -> dict:
    set_torch_threads(spec["threads"])
    from llmkit.core import SamplingParams
    from llmkit.serve import Engine, EngineConfig

    started = time.perf_counter()
    pretrained = load_llmkit(spec, mode)
    config = EngineConfig(
        num_blocks=-(-spec["kv_tokens"] // 16),
        block_size=16,
        max_num_seqs=spec["batch"],
        max_num_batched_tokens=max(2048, spec["batch"] * spec["decode_prompt_tokens"]),
        enable_prefix_caching=False,  # every repeat computes its prefill
    )
    engine = Engine(pretrained, config=config)
    load_seconds = time.perf_counter() - started

    def run(prompts, max_tokens):
        params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
        for prompt in prompts:
            engine.add_request(prompt, params)
        started_all, made = set(), 0
        while engine.has_unfinished():
            outputs = engine.step()
            now = time.perf_counter()
            tokens = sum(len(d.token_ids) for o in outputs for d in o.deltas)
            started_all.update(o.request_id for o in outputs if any(d.token_ids for d in o.deltas))
            made += tokens
            if len(started_all) == len(prompts):
                yield now, made
                made = 0

    def prefill_seconds(ids):
        start = time.perf_counter()
        for _ in run([ids], 1):
            pass
        return time.perf_counter() - start

    def greedy(prompts, tokens):
        params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)
        return [o.completions[0].token_ids for o in engine.generate(prompts, params, progress=False)]

    result = measure(spec, prefill_seconds, run, greedy)
    return result | {
        "load_seconds": load_seconds,
        "weights_bytes": unique_tensor_bytes(pretrained.model),
        "native_ops": native_ops(),
        "kernels_build": kernels_build(),
        "activation_dtype": getattr(
            pretrained.model.layers[0].self_attn.q_proj,
            "activations",
            str(pretrained.model.dtype).removeprefix("torch."),
        ),
    }


# --- HF transformers -------------------------------------------------------------------------------


def run_transformers(spec: dict) -> dict:
    set_torch_threads(spec["threads"])
    import torch
    import transformers

    started = time.perf_counter()
    path = Path(spec["model"])
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    load_seconds = time.perf_counter() - started

    @torch.inference_mode()
    def run(prompts, max_tokens):
        """Greedy with the model's own KV cache; prompts of equal length, so no padding."""
        out = model(input_ids=torch.tensor(prompts), use_cache=True, logits_to_keep=1)
        tokens = out.logits[:, -1].argmax(-1, keepdim=True)
        yield time.perf_counter(), len(prompts)
        for _ in range(max_tokens - 1):
            out = model(input_ids=tokens, past_key_values=out.past_key_values, use_cache=True)
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
            yield time.perf_counter(), len(prompts)

    @torch.inference_mode()
    def prefill_seconds(ids):
        start = time.perf_counter()
        model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
        return time.perf_counter() - start

    @torch.inference_mode()
    def greedy(prompts, tokens):
        ids = []
        for prompt in prompts:
            out = model(input_ids=torch.tensor([prompt]), use_cache=True, logits_to_keep=1)
            made = [int(out.logits[0, -1].argmax())]
            while len(made) < tokens:
                out = model(input_ids=torch.tensor([[made[-1]]]), past_key_values=out.past_key_values, use_cache=True)
                made.append(int(out.logits[0, -1].argmax()))
            ids.append(made)
        return ids

    result = measure(spec, prefill_seconds, run, greedy)
    return result | {
        "load_seconds": load_seconds,
        "weights_bytes": unique_tensor_bytes(model),
        "version": transformers.__version__,
        "torch": torch.__version__,
    }


# --- llama.cpp through llama-cpp-python's low-level API (llama_batch with one seq_id per sequence) ---


def run_llamacpp(spec: dict) -> dict:
    import llama_cpp
    import numpy as np

    @llama_cpp.llama_log_callback
    def errors_only(level, text, _user_data):  # llama.cpp logs every graph input at load otherwise
        if level == 4:  # GGML_LOG_LEVEL_ERROR
            sys.stderr.write(text.decode(errors="replace"))

    llama_cpp.llama_log_set(errors_only, None)
    started = time.perf_counter()
    llama_cpp.llama_backend_init()
    model_params = llama_cpp.llama_model_default_params()  # mmap on, like the CLI
    model = llama_cpp.llama_model_load_from_file(spec["model"].encode(), model_params)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {spec['model']}")
    ctx = batch = None
    try:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = spec["kv_tokens"]  # the same KV capacity the llmkit engine gets
        params.n_batch = max(len(spec["prefill_ids"]), spec["batch"] * spec["decode_prompt_tokens"])
        params.n_ubatch = 512
        params.n_seq_max = spec["batch"]
        params.kv_unified = True  # one KV buffer of n_ctx cells shared by the sequences, like the engine's pool
        params.n_threads = params.n_threads_batch = spec["threads"]
        ctx = llama_cpp.llama_init_from_model(model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context")
        load_seconds = time.perf_counter() - started
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        memory = llama_cpp.llama_get_memory(ctx)
        batch = llama_cpp.llama_batch_init(params.n_batch, 0, spec["batch"])

        def decode(entries):
            """entries: (token, position, sequence, wants logits); returns the argmax of each wanted row."""
            batch.n_tokens = len(entries)
            for i, (token, position, sequence, logits) in enumerate(entries):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
                batch.seq_id[i][0], batch.logits[i] = sequence, logits
            status = llama_cpp.llama_decode(ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
            rows = [i for i, entry in enumerate(entries) if entry[3]]
            return [
                int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).argmax())
                for i in rows
            ]

        def run(prompts, max_tokens):
            llama_cpp.llama_memory_clear(memory, True)
            entries = [
                (token, pos, seq, pos == len(p) - 1) for seq, p in enumerate(prompts) for pos, token in enumerate(p)
            ]
            tokens = decode(entries)
            yield time.perf_counter(), len(prompts)
            for step in range(max_tokens - 1):
                position = len(prompts[0]) + step
                tokens = decode([(token, position, seq, True) for seq, token in enumerate(tokens)])
                yield time.perf_counter(), len(prompts)

        def prefill_seconds(ids):
            llama_cpp.llama_memory_clear(memory, True)
            start = time.perf_counter()
            decode([(token, pos, 0, pos == len(ids) - 1) for pos, token in enumerate(ids)])
            return time.perf_counter() - start

        def greedy(prompts, tokens):
            ids = []
            for prompt in prompts:
                llama_cpp.llama_memory_clear(memory, True)
                made = decode([(t, pos, 0, pos == len(prompt) - 1) for pos, t in enumerate(prompt)])
                while len(made) < tokens:
                    made += decode([(made[-1], len(prompt) + len(made) - 1, 0, True)])
                ids.append(made)
            return ids

        result = measure(spec, prefill_seconds, run, greedy)
        return result | {
            "load_seconds": load_seconds,
            "weights_bytes": int(llama_cpp.llama_model_size(model)),
            "version": llama_cpp.__version__,
        }
    finally:
        if batch is not None:
            llama_cpp.llama_batch_free(batch)
        if ctx:
            llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)


def main() -> None:
    engine, spec_path, out_path = sys.argv[1:4]
    spec = json.loads(Path(spec_path).read_text())
    os.environ.setdefault("OMP_NUM_THREADS", str(spec["threads"]))
    try:
        if engine == "reference":
            result = run_reference(spec)
        elif engine.startswith("llmkit:"):
            result = run_llmkit(spec, engine.removeprefix("llmkit:"))
        elif engine == "transformers":
            result = run_transformers(spec)
        elif engine == "llamacpp":
            result = run_llamacpp(spec)
        else:
            raise ValueError(f"unknown engine {engine!r}")
    except NotAvailable as reason:
        result = {"unavailable": str(reason)}
    result["peak_rss_bytes"] = peak_rss_bytes()
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
