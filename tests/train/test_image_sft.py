"""Image SFT end to end: `llmkit train sft` teaches a tiny random SmolVLM (Idefics3) the colour and shape of
generated images; held-out images are then answered in process and through `llmkit serve` and the openai SDK."""

from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from core.vision_fixtures import CHAT_TEMPLATE, build_tokenizer
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from llmkit.core.models.vision import Idefics3Config, Idefics3Model
from llmkit.core.models.vision.pretrained import load_vision_language
from llmkit.train import train
from llmkit.train.config import SFTConfig
from llmkit.train.errors import ConfigError, DataError
from llmkit.train.image_sft.encoding import ImageRecordEncoder
from llmkit.train.image_sft.records import load_image_records

EOS = "<end_of_utterance>"
SIDE = 32
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")
QUESTION = "what shape is this?"


def build_untrained_vlm(directory: Path, seed: int = 0) -> Path:
    """A tiny Idefics3 at torch's default init: SigLIP 64 wide, 2 layers, 8-pixel patches of a 32x32 image,
    pixel shuffle to 4 image tokens, a 64-wide 2-layer Llama; one tile per image (no splitting)."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({"eos_token": EOS}))
    (directory / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    text = {"model_type": "llama", "vocab_size": 400, "hidden_size": 64, "intermediate_size": 128}
    text |= {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
    text |= {"max_position_embeddings": 512, "tie_word_embeddings": False, "eos_token_id": tokenizer.token_to_id(EOS)}
    vision = {"model_type": "idefics3_vision", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
    vision |= {"num_attention_heads": 4, "image_size": SIDE, "patch_size": 8, "hidden_act": "gelu_pytorch_tanh"}
    config = {"model_type": "idefics3", "image_token_id": tokenizer.token_to_id("<image>"), "scale_factor": 2}
    config |= {"tie_word_embeddings": False, "text_config": text, "vision_config": vision}
    (directory / "config.json").write_text(json.dumps(config))
    processor = {
        "image_seq_len": 4,
        "image_processor": {
            "do_image_splitting": False,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "max_image_size": {"longest_edge": SIDE},
            "size": {"longest_edge": SIDE},
        },
    }
    (directory / "processor_config.json").write_text(json.dumps(processor))
    torch.manual_seed(seed)
    model = Idefics3Model(Idefics3Config.from_hf_dict(config))
    with torch.no_grad():  # as SigLIP initializes it (torch's N(0, 1) drowns the patches' signal)
        model.vision_model.embeddings.position_embedding.weight.normal_(std=vision["hidden_size"] ** -0.5)
    tensors = {
        ("lm_head.weight" if name == "text_model.lm_head.weight" else f"model.{name}"): p.detach().contiguous()
        for name, p in model.named_parameters()
    }
    save_file(tensors, str(directory / "model.safetensors"))
    return directory


def draw(colour: str, shape: str, rng: random.Random) -> Image.Image:
    """A shape of random size, near the centre, in a jittered colour on a jittered light background."""
    background = tuple(rng.randint(225, 255) for _ in range(3))
    image = Image.new("RGB", (SIDE, SIDE), background)
    pen = ImageDraw.Draw(image)
    size = rng.randint(18, 24)
    x, y = (SIDE - size) // 2 + rng.randint(-3, 3), (SIDE - size) // 2 + rng.randint(-3, 3)
    fill = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in COLOURS[colour])
    if shape == "circle":
        pen.ellipse((x, y, x + size, y + size), fill=fill)
    elif shape == "square":
        pen.rectangle((x, y, x + size, y + size), fill=fill)
    else:
        pen.polygon([(x + size / 2, y), (x, y + size), (x + size, y + size)], fill=fill)
    return image


def labelled_images(count: int, seed: int) -> list[tuple[Image.Image, str]]:
    rng = random.Random(seed)
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    return [(draw(*pairs[i % len(pairs)], rng), "a {} {}".format(*pairs[i % len(pairs)])) for i in range(count)]


def write_dataset(directory: Path, count: int, seed: int) -> Path:
    (directory / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (image, answer) in enumerate(labelled_images(count, seed)):
        image.save(directory / "images" / f"{index}.png")
        user = [{"type": "image", "path": f"images/{index}.png"}, {"type": "text", "text": QUESTION}]
        lines.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})
    path = directory / "shapes.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    return build_untrained_vlm(tmp_path_factory.mktemp("untrained-vlm"))


# ---- the record format, the encoding and the refusals (fast) ----


def test_image_records_encode_image_tokens_in_place_and_mask_only_the_answer(untrained, tmp_path):
    data = write_dataset(tmp_path, 2, seed=1)
    pretrained = load_vision_language(untrained)
    encoder = ImageRecordEncoder(pretrained)
    [(where, record)] = load_image_records(data)[:1]
    sequence = encoder.encode(record, where)
    tokens = sequence.tokens
    tokenizer = pretrained.tokenizer
    answer = record.messages[-1]["content"]
    targets = [i for i, t in zip(tokens.ids, tokens.targets, strict=True) if t]
    assert tokenizer.decode(targets, skip_special_tokens=False) == f" {answer}{EOS}"
    assert tokens.ids.count(pretrained.model.config.image_token_id) == sequence.num_image_tokens == 4
    # what generation is fed equals the tokens before the first target
    prompt = pretrained.chat_prompt(record.messages[:1], [Image.open(record.images[0])])
    first = tokens.targets.index(True)
    assert prompt.token_ids == tokens.ids[:first]


def test_image_url_data_uri_parts_equal_path_parts(untrained, tmp_path):
    image = labelled_images(1, seed=3)[0][0]
    image.save(tmp_path / "a.png")
    url = "data:image/png;base64," + base64.b64encode((tmp_path / "a.png").read_bytes()).decode()
    answer = {"role": "assistant", "content": "a red circle"}
    records = [
        {"messages": [{"role": "user", "content": [{"type": "image", "path": "a.png"}]}, answer]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}, answer]},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    encoder = ImageRecordEncoder(load_vision_language(untrained))
    first, second = (encoder.encode(record, where) for where, record in load_image_records(tmp_path / "d.jsonl"))
    assert first.tokens == second.tokens


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"type": "image", "path": "missing.png"}], "does not exist"),
        ([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}], "base64 data URI"),
        ([{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}], "broken base64"),
        ([{"type": "audio", "audio": "x"}], "neither text nor an image"),
    ],
)
def test_bad_image_parts_name_the_line(tmp_path, content, message):
    record = {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "x"}]}
    (tmp_path / "d.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=f"d.jsonl:1: .*{message}"):
        load_image_records(tmp_path / "d.jsonl")


def test_max_length_through_an_image_is_refused(untrained, tmp_path):
    labelled_images(1, seed=2)[0][0].save(tmp_path / "a.png")
    image_turn = [{"type": "image", "path": "a.png"}, {"type": "text", "text": QUESTION}]
    messages = [
        {"role": "user", "content": "what shape is this?"},
        {"role": "assistant", "content": "a red circle"},
        {"role": "user", "content": image_turn},
        {"role": "assistant", "content": "a blue square"},
    ]
    (tmp_path / "d.jsonl").write_text(json.dumps({"messages": messages}) + "\n")
    [(where, record)] = load_image_records(tmp_path / "d.jsonl")
    pretrained = load_vision_language(untrained)
    ids = ImageRecordEncoder(pretrained).encode(record, where).tokens.ids
    inside_image = ids.index(pretrained.model.config.image_token_id) + 2
    options = {"model": str(untrained), "data": str(tmp_path / "d.jsonl"), "output_dir": str(tmp_path / "run")}
    with pytest.raises(DataError, match="d.jsonl:1: max_length cuts through an image"):
        train("sft", SFTConfig(**options, max_steps=1, max_length=inside_image, truncation="truncate"))


def test_unsupported_options_are_refused_before_loading(untrained, tmp_path):
    with pytest.raises(ConfigError, match="LoRA is not supported for vision-language models"):
        train("sft", SFTConfig(model=str(untrained), data=str(tmp_path / "none.jsonl"), lora_rank=4))


def test_freeze_vision_tower_keeps_the_tower_and_trains_the_rest(untrained, tmp_path):
    data = write_dataset(tmp_path, 4, seed=4)
    options = {"model": str(untrained), "data": str(data), "output_dir": str(tmp_path / "run"), "max_steps": 2}
    result = train("sft", SFTConfig(**options, batch_size=2, learning_rate=1e-2, freeze_vision_tower=True))
    before = load_vision_language(untrained).model.state_dict()
    after = load_vision_language(result.final_dir / "model").model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and not any(name.startswith("vision_model.") for name in changed)
    assert any(name.startswith("connector.") for name in changed)
    assert any(name.startswith("text_model.") for name in changed)


# ---- trained end to end ----


def answer_in_process(model_dir: Path, images: list[tuple[Image.Image, str]]) -> list[str]:
    pretrained = load_vision_language(model_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    answers = []
    for image, _ in images:
        ids = pretrained.generate_greedy(pretrained.chat_prompt(messages, [image]), 16)
        answers.append(pretrained.tokenizer.decode(ids, skip_special_tokens=True).strip())
    return answers


def answer_through_server(model_dir: Path, images: list[tuple[Image.Image, str]]) -> list[str]:
    import openai
    from live_servers import free_port, start_cli, stop, wait_healthy

    port = free_port()
    server = start_cli(
        "serve", "-m", str(model_dir), "--port", str(port), "--embedding-model", "none",
        "--served-model-name", "shapes", "--kv-cache-memory", "8MiB",
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", [server])
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        answers = []
        for image, _ in images:
            url = "data:image/png;base64," + base64.b64encode(png(image)).decode()
            content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}]
            reply = client.chat.completions.create(
                model="shapes", messages=[{"role": "user", "content": content}], max_tokens=16, temperature=0
            )
            answers.append(reply.choices[0].message.content.strip())
        return answers
    finally:
        stop([server])


def test_a_tiny_vlm_trained_by_llmkit_train_sft_names_held_out_shapes(untrained, tmp_path):
    """The tower stays at its random init (`freeze_vision_tower`, LLaVA's first-stage recipe): the connector and
    the language model learn to read it. Training the tower too reached 15-17 of 20 in the same time."""
    data = write_dataset(tmp_path / "data", 960, seed=10)
    config = {
        "model": str(untrained), "data": str(data), "output_dir": str(tmp_path / "run"), "max_steps": 300,
        "batch_size": 24, "learning_rate": 3.0e-3, "warmup_steps": 10, "lr_scheduler": "cosine", "seed": 0,
        "freeze_vision_tower": True, "progress": False, "logging_steps": 100,
    }  # fmt: skip
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    command = [sys.executable, "-m", "llmkit.core.cli", "train", "sft", "--config", str(tmp_path / "sft.yaml")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    print(f"llmkit train sft: {time.perf_counter() - started:.1f} s")
    model_dir = tmp_path / "run" / "final" / "model"
    held_out = labelled_images(20, seed=999)
    expected = [answer for _, answer in held_out]
    untrained_answers = answer_in_process(untrained, held_out)
    assert sum(a == e for a, e in zip(untrained_answers, expected, strict=True)) <= 2
    in_process = answer_in_process(model_dir, held_out)
    correct = sum(a == e for a, e in zip(in_process, expected, strict=True))
    print(f"held-out images named in process: {correct} of {len(expected)}")
    assert correct >= 18, list(zip(in_process, expected, strict=True))
    started = time.perf_counter()
    served = answer_through_server(model_dir, held_out)
    print(f"llmkit serve + openai SDK: {time.perf_counter() - started:.1f} s")
    assert served == in_process
