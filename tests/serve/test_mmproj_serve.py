"""`llmkit serve -m MODEL.gguf --mmproj MMPROJ.gguf`: a GGUF language model plus llama.cpp's vision projector file
serves images through the openai SDK, with the same answer as core's own load of the pair."""

from __future__ import annotations

import argparse
import base64
import io
from types import SimpleNamespace

import httpx
import numpy as np
import openai
import pytest
from core.vision_fixtures import build_tokenizer
from core.vision_llava_fixtures import write_mmproj, write_text_gguf
from image_model import build_tiny_llava
from live_servers import free_port, start_cli, stop, wait_healthy
from PIL import Image

from llmkit.core.cli import CommandRegistrar
from llmkit.core.errors import LlmkitError, ModelFormatError
from llmkit.core.models.vision.pretrained import load_vision_language
from llmkit.core.sampling import SamplingParams
from llmkit.serve.engine import Engine
from llmkit.serve.server.cli import register as register_serve_commands
from llmkit.serve.server.cli import run_serve

QUESTION = "what shape is this?"
MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
MAX_TOKENS = 6
GREEDY = SamplingParams(temperature=0, max_tokens=MAX_TOKENS)


def transformers_shaped(model) -> SimpleNamespace:
    """Core's `LlavaModel` seen through the attributes the llama.cpp-style writers read from a transformers LLaVA."""
    text, vision, config = model.text_model, model.vision_tower, model.config
    language_names = {name for name, _ in text.named_parameters() if name != "lm_head.weight"}
    language_state = {k: v for k, v in text.state_dict().items() if k in language_names}
    text_config = SimpleNamespace(
        max_position_embeddings=config.text.max_position_embeddings,
        hidden_size=config.text.hidden_size,
        num_hidden_layers=config.text.num_layers,
        intermediate_size=config.text.intermediate_size,
        num_attention_heads=config.text.num_heads,
        num_key_value_heads=config.text.num_kv_heads,
        rms_norm_eps=config.text.rms_norm_eps,
        vocab_size=config.text.vocab_size,
    )
    vision_config = SimpleNamespace(
        image_size=config.vision.image_size,
        patch_size=config.vision.patch_size,
        hidden_size=config.vision.hidden_size,
        intermediate_size=config.vision.intermediate_size,
        num_attention_heads=config.vision.num_heads,
        num_hidden_layers=config.vision.num_layers,
        layer_norm_eps=config.vision.layer_norm_eps,
        hidden_act=config.vision.hidden_act,
    )
    return SimpleNamespace(
        config=SimpleNamespace(text_config=text_config, vision_config=vision_config, vision_feature_layer=-2),
        model=SimpleNamespace(
            language_model=SimpleNamespace(state_dict=lambda: language_state),
            vision_tower=vision,
            multi_modal_projector=model.multi_modal_projector,
        ),
        lm_head=text.lm_head,
    )


@pytest.fixture(scope="module")
def gguf_pair(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("mmproj-serve")
    (root / "hf").mkdir()
    directory = build_tiny_llava(root / "hf", seed=5)
    source = transformers_shaped(load_vision_language(directory).model)
    text = write_text_gguf(root / "model.gguf", source, build_tokenizer())
    mmproj = write_mmproj(root / "mmproj.gguf", source, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    return SimpleNamespace(text=text, mmproj=mmproj, root=root)


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (24 + 8 * seed, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _engine_answers(gguf_pair, pngs: list[bytes]) -> list:
    """In process: core's own load of the pair (greedy ids, no engine) and the engine on that load agree token
    for token. A random model's ids need not decode to whole characters, so the server's text is compared with
    the engine's, which comes from the same incremental detokenizer."""
    pretrained = load_vision_language(gguf_pair.text, mmproj=gguf_pair.mmproj)
    engine = Engine(pretrained, kv_cache_memory="8MiB")
    text = pretrained.chat_template.render(MESSAGES, add_generation_prompt=True, image_parts=True)
    outputs = []
    for png in pngs:
        core_ids = pretrained.generate_greedy(pretrained.chat_prompt(MESSAGES, [png]), MAX_TOKENS)
        (output,) = engine.generate([engine.vision.prompt(text, [(png, "auto")])], GREEDY, progress=False)
        assert output.completions[0].token_ids == core_ids
        outputs.append(output)
    return outputs


def test_llmkit_serve_with_mmproj_answers_images_like_core(gguf_pair):
    pngs = [_png(1), _png(2)]
    expected = _engine_answers(gguf_pair, pngs)
    port = free_port()
    server = start_cli(
        "serve", "-m", str(gguf_pair.text), "--mmproj", str(gguf_pair.mmproj), "--port", str(port),
        "--embedding-model", "none", "--served-model-name", "llava-gguf", "--kv-cache-memory", "8MiB",
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, [server])
        assert httpx.get(f"{url}/v1/models").json()["data"][0]["input_modalities"] == ["text", "image"]
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        for png, output in zip(pngs, expected, strict=True):
            data_url = "data:image/png;base64," + base64.b64encode(png).decode()
            content = [{"type": "image_url", "image_url": {"url": data_url}}, {"type": "text", "text": QUESTION}]
            reply = client.chat.completions.create(
                model="llava-gguf",
                messages=[{"role": "user", "content": content}],
                max_tokens=MAX_TOKENS,
                temperature=0,
            )
            completion = output.completions[0]
            served = (reply.choices[0].message.content, reply.usage.prompt_tokens, reply.usage.completion_tokens)
            assert served == (completion.text, len(output.prompt_token_ids), len(completion.token_ids))
    finally:
        stop([server])


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()  # llmkit serve's own options (the whole CLI loads every plugin: slow)
    register_serve_commands(CommandRegistrar(parser.add_subparsers(dest="command"), {}))
    return parser.parse_args(["serve", *argv, "--embedding-model", "none"])


def test_mmproj_with_a_weights_format_is_refused_before_loading(gguf_pair):
    args = _serve_args("-m", str(gguf_pair.text), "--mmproj", str(gguf_pair.mmproj), "--weights", "bfloat16")
    with pytest.raises(LlmkitError, match="--weights cannot be combined with --mmproj"):
        run_serve(args)


def test_mmproj_beside_a_model_that_is_not_gguf_is_refused(gguf_pair):
    args = _serve_args("-m", str(gguf_pair.root / "hf"), "--mmproj", str(gguf_pair.mmproj))
    with pytest.raises(ModelFormatError, match="with an mmproj file, .* must be the GGUF language model"):
        run_serve(args)
