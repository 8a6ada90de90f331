"""Image tokens and time to first token per image detail level and per document strategy.

    OMP_NUM_THREADS=2 python benchmarks/multimodal.py [--repeats 3] [--threads 2] [--json out.json]

No vision-language weights are on this machine (the default model, SmolLM2-135M, is text-only), so the model is
a tiny random SmolVLM written here, like tests/serve/image_model.py but with SmolVLM-256M-Instruct's image
settings: 512-pixel tiles, longest edge 2048, 16-pixel patches and pixel shuffle 4 (64 image tokens a tile).
The token counts are therefore what SmolVLM-256M's processor gives for these inputs; the times are the whole
path (PDF read, render, resize and tiling, the vision tower over every tile, the paged engine's prefill, one
token) on a model with small layers (vision width 64 over 1024 patches a tile, 2 layers; text width 64, 2
layers), so they rank the choices' preprocessing and tower work, not a 256M model's compute.

Inputs are generated: random-pixel images (a small square, a 4:3 photo size, a large 4:3 image) and a 3-page
letter-size PDF of text with a drawn box (core's `write_text_pdf`). TTFT is the median over `--repeats` of one
request with max_tokens 1 through `Engine.generate`, prefix caching off (a repeat would hit it), counted from
the raw input (image bytes / PDF bytes) to the first token.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmkit.core.documents import document_content_parts, read_pdf, write_text_pdf
from llmkit.core.models.vision import Idefics3Config, Idefics3Model
from llmkit.core.models.vision.pretrained import load_vision_language
from llmkit.core.sampling import SamplingParams
from llmkit.serve import Engine

EOS = "<end_of_utterance>"
SPECIAL = ["<|im_start|>", EOS, "<fake_token_around_image>", "<image>", "<global-img>"]
SPECIAL += [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
CHAT_TEMPLATE = (  # SmolVLM's (transformers' processing_smolvlm.DEFAULT_CHAT_TEMPLATE)
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'] is string %}"
    "{{': ' + message['content']}}{% else %}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}"
    "{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IMAGES = {"small 384x384": (384, 384), "photo 1024x768": (1024, 768), "large 2048x1536": (2048, 1536)}
PDF_PAGES = [
    "Quarterly report\nRevenue grew 12% to 4.1 million euros.\nCosts fell 3%.\n" * 4,
    "Outlook\nWe expect growth of 8-10% next quarter.\nRisks: supply, currency.\n" * 4,
    "Appendix\nTable 1: revenue by region (north 1.2, south 1.9, east 1.0).\n" * 4,
]


def random_init(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * 0.3


def write_model(
    directory: Path, vision_overrides: dict | None = None, text_overrides: dict | None = None, init=random_init
) -> Path:
    """The tiny random SmolVLM (config fields replaced by the overrides; weights from `init`)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(PDF_PAGES * 10 + ["User: what is in this image? Assistant: a chart.\n"] * 20, trainer)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({"eos_token": EOS}))
    (directory / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    text = {"model_type": "llama", "vocab_size": 400, "hidden_size": 64, "intermediate_size": 128}
    text |= {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6}
    text |= {"max_position_embeddings": 8192, "rope_theta": 10000.0, "tie_word_embeddings": False}
    text |= {"bos_token_id": 1, "eos_token_id": tokenizer.token_to_id(EOS)}
    text |= text_overrides or {}
    vision = {"model_type": "idefics3_vision", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
    vision |= {"num_attention_heads": 4, "image_size": 512, "patch_size": 16, "hidden_act": "gelu_pytorch_tanh"}
    vision |= vision_overrides or {}
    config = {"model_type": "idefics3", "image_token_id": tokenizer.token_to_id("<image>"), "scale_factor": 4}
    config |= {"tie_word_embeddings": False, "text_config": text, "vision_config": vision}
    (directory / "config.json").write_text(json.dumps(config))
    image_processor = {"do_image_splitting": True, "do_normalize": True, "do_rescale": True, "do_resize": True}
    image_processor |= {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "resample": 1, "rescale_factor": 1 / 255}
    image_processor |= {"max_image_size": {"longest_edge": 512}, "size": {"longest_edge": 2048}}
    processor = {"image_seq_len": 64, "image_processor": image_processor}
    (directory / "processor_config.json").write_text(json.dumps(processor))
    model = Idefics3Model(Idefics3Config.from_hf_dict(config))
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, param in model.named_parameters():
        stored = "lm_head.weight" if name == "text_model.lm_head.weight" else f"model.{name}"
        tensors[stored] = init(name, param.shape, generator).contiguous()
    save_file(tensors, str(directory / "model.safetensors"))
    return directory


def png(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def first_token(engine: Engine, content: list[dict], images: list, detail: str) -> int:
    """Build the prompt (preprocessing included) and run it to one token; its prompt length."""
    messages = [{"role": "user", "content": [*content, {"type": "text", "text": "What does it show?"}]}]
    template = engine.pretrained.chat_template
    text = template.render(messages, image_parts=True)
    prompt = engine.vision.prompt(text, [(image, detail) for image in images]) if images else None
    if prompt is None:
        prompt = engine.pretrained.tokenizer.encode(text)
    engine.generate([prompt], SamplingParams(temperature=0, max_tokens=1, ignore_eos=True))
    return len(prompt)


def measure(engine: Engine, build, repeats: int) -> tuple[int, float]:
    first_token(engine, *build())  # warm-up
    times, tokens = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = first_token(engine, *build())
        times.append(time.perf_counter() - start)
    return tokens, statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vlm = load_vision_language(write_model(Path(tmp)))
        engine = Engine(vlm, num_blocks=2048, block_size=16, enable_prefix_caching=False)
        question_only = measure(engine, lambda: ([], [], "auto"), args.repeats)
        rows.append(("text only", "-", *question_only))
        for seed, (name, size) in enumerate(IMAGES.items()):
            data = png(*size, seed=seed)
            for detail in ("low", "auto", "high"):
                tokens, ttft = measure(engine, lambda d=data, det=detail: ([{"type": "image"}], [d], det), args.repeats)
                rows.append((f"image {name}", detail, tokens, ttft))
        pdf = write_text_pdf(PDF_PAGES, boxes=True, font_size=10)
        for strategy, detail in (("text", "-"), ("pages", "low"), ("pages", "high"), ("both", "low"), ("both", "high")):

            def build(s=strategy, det=detail):
                parts, pages = document_content_parts(read_pdf(pdf, s, name="report.pdf"))
                return parts, pages, "auto" if det == "-" else det

            tokens, ttft = measure(engine, build, args.repeats)
            rows.append((f"PDF 3 pages, {strategy}", detail, tokens, ttft))
    print(f"{'input':<28} {'detail':<7} {'prompt tokens':>13} {'TTFT ms':>9}")
    for name, detail, tokens, ttft in rows:
        print(f"{name:<28} {detail:<7} {tokens:>13} {ttft:>9.1f}")
    if args.json:
        keys = ("input", "detail", "prompt_tokens", "ttft_ms")
        Path(args.json).write_text(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=1))


if __name__ == "__main__":
    main()
