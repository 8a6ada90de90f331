"""Test helper: write an HF-named state dict as a GGUF file the way llama.cpp's converter does."""

from __future__ import annotations

import json

import gguf
import numpy as np
import torch

LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
GLOBAL_NAMES = {
    "embed_tokens.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_name(name: str) -> str:
    name = name.removeprefix("model.")
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    _, index, rest = name.split(".", 2)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{index}.{LAYER_NAMES[module]}.{kind}"


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(
    path,
    config: dict,
    state_dict: dict[str, torch.Tensor],
    tokenizer,
    *,
    arch="llama",
    quantize=None,
    skip=(),
    override_types=None,
) -> dict[str, torch.Tensor]:
    """Write `state_dict` (HF names) to `path`; return the float tensors the file really holds
    (after quantization, in HF layout) so tests can compare against them.

    quantize(name) -> GGMLQuantizationType chooses each 2-D tensor's type (default F32).
    """
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    vocab = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab)
    writer.add_token_types([3 if t.startswith("<|") else 1 for t in vocab])
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in merges])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    stored = {}
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for name, tensor in state_dict.items():
        if name in skip:
            continue
        w = tensor.float().numpy()
        permuted = arch == "llama" and ("q_proj" in name or "k_proj" in name)
        n = heads if "q_proj" in name else kv_heads
        if permuted:
            w = permute(w, n)
        qtype = (
            (quantize or (lambda _: gguf.GGMLQuantizationType.F32))(name)
            if w.ndim == 2
            else gguf.GGMLQuantizationType.F32
        )
        if override_types and name in override_types:
            writer.add_tensor(gguf_name(name), override_types[name](w))
            continue
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(gguf_name(name), w.astype(np.float32))
            back = w.astype(np.float32)
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(gguf_name(name), w.astype(np.float16))
            back = w.astype(np.float16).astype(np.float32)
        else:
            q = gguf.quants.quantize(w.astype(np.float32), qtype)
            writer.add_tensor(gguf_name(name), q, raw_shape=q.shape, raw_dtype=qtype)
            back = gguf.quants.dequantize(q, qtype)
        back = torch.from_numpy(np.array(back, dtype=np.float32))
        if permuted:
            back = _unpermute(back, n)
        stored[name] = back
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


def _unpermute(w: torch.Tensor, heads: int) -> torch.Tensor:
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
