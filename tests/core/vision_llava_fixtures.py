"""A tiny random LLaVA (CLIP or SigLIP tower) saved by transformers, and the same weights written the way
llama.cpp ships them (a GGUF language model plus an mmproj GGUF), for the LLaVA and mmproj tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .gguf_writer import gguf_name, permute
from .vision_fixtures import CHAT_TEMPLATE, SPECIAL_TOKENS, TEXT_CONFIG, VISION_CONFIG, build_tokenizer

SIDE, PATCH, VISION_LAYERS = (
    VISION_CONFIG["image_size"],
    VISION_CONFIG["patch_size"],
    3,
)  # 4x4 patches (+ CLIP's class token)


def build_tiny_llava(
    directory: Path,
    *,
    tower: str = "clip",
    projector_act: str = "gelu",
    feature_layer: int | list[int] = -2,
    strategy: str = "default",
    do_pad: bool = False,
    seed: int = 0,
) -> Path:
    """Save a LLaVA model, tokenizer, image processor, processor config and chat template into `directory`."""
    import transformers
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    raw_tokenizer = build_tokenizer()
    hf_tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=raw_tokenizer, eos_token="<end_of_utterance>")
    vision = {**VISION_CONFIG, "num_hidden_layers": VISION_LAYERS}
    if tower == "clip":
        vision["model_type"] = "clip_vision_model"
        image_processor = LlavaImageProcessorPil(
            size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE}, do_pad=do_pad
        )
    else:
        vision["model_type"] = "siglip_vision_model"
        image_processor = LlavaImageProcessorPil(
            size={"height": SIDE, "width": SIDE},
            do_center_crop=False,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )
    class_tokens = int(tower == "clip")
    processor = transformers.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=hf_tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=class_tokens,
        chat_template=CHAT_TEMPLATE,
    )
    config = transformers.LlavaConfig(
        vision_config=vision,
        text_config=dict(TEXT_CONFIG),
        image_token_index=raw_tokenizer.token_to_id("<image>"),
        image_seq_length=(SIDE // PATCH) ** 2 + class_tokens - int(strategy == "default"),
        vision_feature_layer=feature_layer,
        vision_feature_select_strategy=strategy,
        projector_hidden_act=projector_act,
    )
    torch.manual_seed(seed)
    model = transformers.LlavaForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def write_text_gguf(path: Path, hf_model, tokenizer) -> Path:
    """The language model of a transformers LLaVA as llama.cpp's converter writes a llama GGUF (float32)."""
    import gguf

    text = hf_model.config.text_config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(text.max_position_embeddings)
    writer.add_embedding_length(text.hidden_size)
    writer.add_block_count(text.num_hidden_layers)
    writer.add_feed_forward_length(text.intermediate_size)
    writer.add_head_count(text.num_attention_heads)
    writer.add_head_count_kv(text.num_key_value_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(text.rms_norm_eps)
    writer.add_vocab_size(text.vocab_size)  # the embedding has more rows than the tokenizer has tokens
    vocab = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab)
    writer.add_token_types([3 if token in SPECIAL_TOKENS else 1 for token in vocab])
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in merges])
    writer.add_eos_token_id(tokenizer.token_to_id("<end_of_utterance>"))
    writer.add_chat_template(CHAT_TEMPLATE)
    language_model = hf_model.model.language_model.state_dict()
    state = {**{f"model.{k}": v for k, v in language_model.items()}, "lm_head.weight": hf_model.lm_head.weight}
    for name, tensor in state.items():
        w = tensor.detach().float().numpy()
        if "q_proj" in name:
            w = permute(w, text.num_attention_heads)
        elif "k_proj" in name:
            w = permute(w, text.num_key_value_heads)
        writer.add_tensor(gguf_name(name), np.ascontiguousarray(w, dtype=np.float32))
    _finish(writer)
    return path


def write_mmproj(path: Path, hf_model, image_mean, image_std, *, legacy: bool = False, f16: bool = False) -> Path:
    """The vision tower and projector of a transformers LLaVA as an mmproj GGUF.

    legacy=False: names as llama.cpp's convert_hf_to_gguf.py gives them (fc1 -> ffn_up), every layer, no
    feature-layer key (clip.cpp then runs block_count - 1 layers). legacy=True: as the older
    convert_image_encoder_to_gguf.py --llava-projector wrote them (fc1 -> ffn_down, fc2 -> ffn_up, the layers
    past the feature layer left out, `clip.vision.feature_layer`). Both skip the post layernorm, as LLaVA does.
    f16: every tensor of two or more dimensions stored as F16 (llama.cpp's default `mmproj-*-f16.gguf`)."""
    import gguf

    config = hf_model.config
    vision = config.vision_config
    layer = config.vision_feature_layer
    feature_layer = layer if layer >= 0 else vision.num_hidden_layers + layer + 1
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_clip_projector_type("mlp")
    writer.add_vision_image_size(vision.image_size)
    writer.add_vision_patch_size(vision.patch_size)
    writer.add_vision_embedding_length(vision.hidden_size)
    writer.add_vision_feed_forward_length(vision.intermediate_size)
    writer.add_vision_projection_dim(config.text_config.hidden_size)
    writer.add_vision_head_count(vision.num_attention_heads)
    writer.add_vision_attention_layernorm_eps(vision.layer_norm_eps)
    writer.add_vision_image_mean(list(image_mean))
    writer.add_vision_image_std(list(image_std))
    writer.add_bool("clip.use_gelu", vision.hidden_act != "quick_gelu")
    if legacy:
        writer.add_vision_block_count(feature_layer)
        writer.add_array("clip.vision.feature_layer", [feature_layer])
    else:
        writer.add_vision_block_count(vision.num_hidden_layers)
    ffn = {"fc1": "ffn_down", "fc2": "ffn_up"} if legacy else {"fc1": "ffn_up", "fc2": "ffn_down"}
    blocks = {
        "layer_norm1": "ln1",
        "layer_norm2": "ln2",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.out_proj": "attn_out",
        "mlp.fc1": ffn["fc1"],
        "mlp.fc2": ffn["fc2"],
    }
    tower = hf_model.model.vision_tower.state_dict()
    for name, tensor in tower.items():
        name = name.removeprefix("vision_model.")
        if name.startswith("post_layernorm") or name.startswith("head.") or name.endswith("position_ids"):
            continue
        if name.startswith("encoder.layers."):
            _, _, index, rest = name.split(".", 3)
            if legacy and int(index) >= feature_layer:
                continue
            module, kind = rest.rsplit(".", 1)
            target = f"v.blk.{index}.{blocks[module]}.{kind}"
        else:
            target = {
                "embeddings.class_embedding": "v.class_embd",
                "embeddings.patch_embedding.weight": "v.patch_embd.weight",
                "embeddings.patch_embedding.bias": "v.patch_embd.bias",
                "embeddings.position_embedding.weight": "v.position_embd.weight",
                "pre_layrnorm.weight": "v.pre_ln.weight",
                "pre_layrnorm.bias": "v.pre_ln.bias",
            }[name]
        writer.add_tensor(target, _stored(tensor, f16))
    for name, tensor in hf_model.model.multi_modal_projector.state_dict().items():
        target = name.replace("linear_1", "mm.0").replace("linear_2", "mm.2")
        writer.add_tensor(target, _stored(tensor, f16))
    _finish(writer)
    return path


def all_logits(model, prompt):
    """Logits at every position of a `MultimodalPrompt` (one dense causal pass)."""
    from llmkit.core.models.attention import DenseCausalAttention

    embeddings = model.input_embeddings(prompt)
    n = embeddings.shape[0]
    return model.compute_logits(model(embeddings, torch.arange(n), DenseCausalAttention(1, n)))


def _stored(tensor: torch.Tensor, f16: bool) -> np.ndarray:
    array = np.ascontiguousarray(tensor.detach().float().numpy())
    return array.astype(np.float16) if f16 and array.ndim >= 2 else array


def _finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
