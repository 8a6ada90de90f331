"""A tiny random Idefics3 model, tokenizer and processor saved by transformers, for the vision parity tests."""

from __future__ import annotations

from pathlib import Path

import torch

TILE = 32  # vision image_size = the processor's max_image_size: 4x4 patches of 8 -> 4 image tokens a tile
SPECIAL_TOKENS = [
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    *[f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)],
]
# SmolVLM's chat template (transformers' processing_smolvlm.DEFAULT_CHAT_TEMPLATE).
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'] is string %}"
    "{{': ' + message['content']}}{% else %}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}"
    "{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# The shapes every tiny vision-language model of the tests shares (transformers' config keys); the LLaVA
# fixtures give their tower one more layer.
TEXT_CONFIG = {
    "model_type": "llama",
    "vocab_size": 400,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
VISION_CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": TILE,
    "patch_size": 8,
}


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = ["User: what shape is this? Assistant: a red circle, a blue square, a green triangle.\n"] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


def build_tiny_idefics3(directory: Path, seed: int = 0) -> Path:
    """Save model, tokenizer, image processor, processor config and chat template into `directory`."""
    import transformers
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    raw_tokenizer = build_tokenizer()
    hf_tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=raw_tokenizer, eos_token="<end_of_utterance>")
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 4 * TILE}, max_image_size={"longest_edge": TILE}, do_image_splitting=True
    )
    processor = transformers.Idefics3Processor(
        image_processor=image_processor, tokenizer=hf_tokenizer, image_seq_len=4, chat_template=CHAT_TEMPLATE
    )
    config = transformers.Idefics3Config(
        vision_config=dict(VISION_CONFIG),
        text_config=dict(TEXT_CONFIG),
        scale_factor=2,
        image_token_id=raw_tokenizer.token_to_id("<image>"),
    )
    torch.manual_seed(seed)
    model = transformers.Idefics3ForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_tiny_smolvlm(directory: Path, idefics3_directory: Path, seed: int = 1) -> Path:
    """A SmolVLM model (model_type "smolvlm") of the same shape, with the Idefics3 directory's tokenizer and
    processor files (SmolVLM's processor lays out image tokens the same way)."""
    import json
    import shutil

    import transformers

    raw = json.loads((idefics3_directory / "config.json").read_text())
    config = transformers.SmolVLMConfig(
        vision_config={**raw["vision_config"], "model_type": "smolvlm_vision"},
        text_config=raw["text_config"],
        scale_factor=raw["scale_factor"],
        image_token_id=raw["image_token_id"],
    )
    model = transformers.SmolVLMForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_pretrained(directory)
    for file in idefics3_directory.iterdir():
        if file.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(file, directory / file.name)
    return directory
