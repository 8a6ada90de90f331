"""Images in the paged engine: greedy ids equal core's non-paged reference (chunked prefill splitting an image
run), the vision tower runs once per image and once per step for all of a step's images, and prefix blocks
are keyed by image content (a repeated image hits, a different image behind the same placeholders misses)."""

from __future__ import annotations

import numpy as np
import pytest
from core.vision_fixtures import build_tokenizer
from core.vision_llava_fixtures import write_mmproj, write_text_gguf
from image_model import build_tiny_llava, build_tiny_vlm
from PIL import Image
from test_mmproj_serve import transformers_shaped

from llmkit.core import ops
from llmkit.core.errors import InvalidParameterError
from llmkit.core.models.vision.pretrained import load_vision_language
from llmkit.core.ops import PagedAttention
from llmkit.core.sampling import SamplingParams
from llmkit.serve.engine import Engine
from llmkit.serve.speculative import SpeculativeConfig

GREEDY = SamplingParams(temperature=0, max_tokens=32, ignore_eos=True)
QUESTION = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what shape is this?"}]}]


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    return load_vision_language(build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm")))


def _image(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _text(vlm, messages=QUESTION) -> str:
    return vlm.chat_template.render(messages, image_parts=True)


def _reference(vlm, image: Image.Image, detail: str) -> list[int]:
    prompt = vlm.text_prompt(_text(vlm), [image], detail=detail)
    return vlm.generate_greedy(prompt, GREEDY.max_tokens, stop_token_ids=())


def test_greedy_ids_equal_the_reference_with_chunked_prefill_splitting_an_image(vlm):
    image = _image(50, 20, seed=1)
    engine = Engine(vlm, num_blocks=64, block_size=4, max_num_batched_tokens=6)
    prompt = engine.vision.prompt(_text(vlm), [(image, "high")])
    assert prompt.token_ids == vlm.text_prompt(_text(vlm), [image], detail="high").token_ids
    (picture,) = prompt.images
    assert picture.processed.num_tiles == 9  # 2 x 4 crops and the global image
    # chunks end on block boundaries (multiples of 4); one falls strictly inside an image-token run
    runs = [(s, s + picture.tokens_per_tile) for s in picture.tile_starts]
    assert any(start < boundary < end for start, end in runs for boundary in range(4, len(prompt), 4))

    (output,) = engine.generate([prompt], GREEDY, progress=False)

    assert output.completions[0].token_ids == _reference(vlm, image, "high")
    assert engine.vision.images_encoded == 1  # the split run took the kept embeddings, not a second tower run
    assert engine.stats().free_blocks == 64


def test_the_tower_runs_once_per_step_for_every_request_and_image_in_it(vlm):
    engine = Engine(vlm, num_blocks=128, block_size=4, max_num_batched_tokens=512)
    first, second = _image(40, 40, seed=2), _image(30, 30, seed=3)
    prompts = [
        engine.vision.prompt(_text(vlm), [(first, "high")]),
        engine.vision.prompt(_text(vlm), [(second, "low")]),
        engine.vision.prompt(_text(vlm), [(first, "high")]),  # the same image in another request
        engine.tokenizer.encode("User: a red circle"),  # and a text request in the same step
    ]

    outputs = engine.generate(prompts, GREEDY, progress=False)

    assert engine.vision.tower_batches == 1
    assert engine.vision.images_encoded == 2  # equal content hashes are encoded once
    ids = [o.completions[0].token_ids for o in outputs]
    assert ids[0] == ids[2] == _reference(vlm, first, "high")
    assert ids[1] == _reference(vlm, second, "low")


def test_a_repeated_image_hits_the_prefix_cache_and_a_different_one_does_not(vlm):
    engine = Engine(vlm, num_blocks=128, block_size=4)
    text = _text(vlm)
    same_a, same_b, other = _image(24, 24, seed=4), _image(24, 24, seed=4), _image(24, 24, seed=5)
    engine.generate([engine.vision.prompt(text, [(same_a, "low")])], GREEDY, progress=False)
    encoded = engine.vision.images_encoded

    repeated = engine.vision.prompt(text, [(same_b, "low")])  # equal pixels, a new object
    (hit,) = engine.generate([repeated], GREEDY, progress=False)
    different = engine.vision.prompt(text, [(other, "low")])
    assert different.token_ids == repeated.token_ids  # the same placeholder ids behind another image
    (miss,) = engine.generate([different], GREEDY, progress=False)

    assert hit.completions[0].cached_prompt_tokens == (len(repeated) - 1) // 4 * 4
    assert engine.vision.images_encoded == encoded + 1  # the hit needed no tower run; the miss did
    first_image_token = different.images[0].tile_starts[0]
    assert miss.completions[0].cached_prompt_tokens == first_image_token // 4 * 4
    assert hit.completions[0].token_ids == _reference(vlm, same_a, "low")
    assert miss.completions[0].token_ids == _reference(vlm, other, "low")


def test_images_in_two_turns_equal_the_reference(vlm):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what shape?"}]},
        {"role": "assistant", "content": "a red circle"},
        {"role": "user", "content": [{"type": "text", "text": "and this?"}, {"type": "image"}]},
    ]
    images = [_image(33, 70, seed=6), _image(20, 20, seed=7)]
    engine = Engine(vlm, num_blocks=128, block_size=4, max_num_batched_tokens=16)
    prompt = engine.vision.prompt(_text(vlm, messages), [(images[0], "auto"), (images[1], "auto")])
    reference = vlm.text_prompt(_text(vlm, messages), images, detail="auto")

    (output,) = engine.generate([prompt], GREEDY, progress=False)

    assert output.completions[0].token_ids == vlm.generate_greedy(reference, 32, stop_token_ids=())


def test_a_text_model_refuses_an_image_prompt_and_vision_refuses_speculation(vlm, make_engine):
    prompt = Engine(vlm, num_blocks=64).vision.prompt(_text(vlm), [(_image(8, 8, seed=0), "low")])
    with pytest.raises(InvalidParameterError, match="does not accept images"):
        make_engine().add_request(prompt)
    with pytest.raises(InvalidParameterError, match="speculative is not supported with a vision-language model"):
        Engine(vlm, num_blocks=64, speculative=SpeculativeConfig(method="ngram"))


def test_llava_greedy_ids_equal_the_reference_with_chunked_prefill(tmp_path):
    llava = load_vision_language(build_tiny_llava(tmp_path))
    images = [_image(40, 25, seed=8), _image(16, 30, seed=9)]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"}]}]
    engine = Engine(llava, num_blocks=64, block_size=4, max_num_batched_tokens=6)
    prompt = engine.vision.prompt(_text(llava, messages), [(image, "auto") for image in images])
    reference = llava.text_prompt(_text(llava, messages), images)
    assert prompt.token_ids == reference.token_ids
    assert [len(i.tile_starts) * i.tokens_per_tile for i in prompt.images] == [16, 16]

    (output,) = engine.generate([prompt], GREEDY, progress=False)

    assert output.completions[0].token_ids == llava.generate_greedy(reference, 32, stop_token_ids=())
    assert engine.vision.images_encoded == 2


def test_a_preempted_image_request_is_recomputed_from_its_kept_embeddings(vlm):
    engine = Engine(vlm, num_blocks=48, block_size=4, max_num_batched_tokens=256)
    images = [_image(50, 20, seed=10), _image(20, 50, seed=11)]
    prompts = [engine.vision.prompt(_text(vlm), [(image, "high")]) for image in images]

    outputs = engine.generate(prompts, GREEDY, progress=False)

    assert engine.stats().preemptions > 0
    assert engine.vision.images_encoded == 2
    for image, output in zip(images, outputs, strict=True):
        assert output.completions[0].token_ids == _reference(vlm, image, "high")
    assert engine.stats().free_blocks == 48


@pytest.fixture
def native_forward(monkeypatch):
    """Counts the torch forward's paged-attention calls (none while every step runs the native forward)."""
    if ops.implementation("paged_forward", "cpu") is ops.reference("paged_forward"):
        pytest.skip("llmkit-kernels is not installed (tests/kernels covers the fused forward)")
    calls = []
    attend = PagedAttention.attend
    monkeypatch.setattr(PagedAttention, "attend", lambda self, *args: calls.append(1) or attend(self, *args))
    return calls


def _greedy_ids_with_an_image_split_by_chunks(model, **options) -> tuple[list[int], Engine]:
    image = _image(50, 20, seed=1)
    engine = Engine(model, num_blocks=64, block_size=4, max_num_batched_tokens=6, **options)
    prompt = engine.vision.prompt(_text(engine.vision.vlm), [(image, "high")])
    (output,) = engine.generate([prompt], GREEDY, progress=False)
    return output.completions[0].token_ids, engine


def test_image_steps_run_the_native_forward_and_equal_the_reference(vlm, native_forward):
    reference = _reference(vlm, _image(50, 20, seed=1), "high")
    ids, engine = _greedy_ids_with_an_image_split_by_chunks(vlm)
    assert ops.forward_is_native(engine.pretrained.model)
    assert native_forward == []  # no step (image rows or not) ran the torch forward
    assert ids == reference
    assert engine.stats().free_blocks == 64


def test_image_steps_with_quantize_and_int8_activations_run_the_native_forward(tmp_path, native_forward):
    """An HF directory with `quantize` at load: int8 activations round each matmul's input, so a float difference
    of 1e-7 between the forwards can flip a rounding; the agreement is printed (pytest -s)."""
    directory = build_tiny_vlm(tmp_path)
    vlm = load_vision_language(directory, quantize="q8_0", activations="int8")
    assert vlm.model.text_model.weights_as_stored
    reference = _reference(vlm, _image(50, 20, seed=1), "high")
    ids, engine = _greedy_ids_with_an_image_split_by_chunks(str(directory), quantize="q8_0", activations="int8")
    assert engine.pretrained.model.weights_as_stored
    assert ops.forward_is_native(engine.pretrained.model)
    assert native_forward == []
    agreeing = next((i for i, (a, b) in enumerate(zip(ids, reference, strict=True)) if a != b), len(ids))
    print(f"int8 activations: {agreeing} of {len(ids)} greedy ids equal the reference before the first difference")
    assert agreeing >= 8


def test_a_gguf_language_model_with_mmproj_runs_as_stored_on_the_native_forward(tmp_path, native_forward):
    (tmp_path / "hf").mkdir()
    source = transformers_shaped(load_vision_language(build_tiny_llava(tmp_path / "hf", seed=5)).model)
    text = write_text_gguf(tmp_path / "model.gguf", source, build_tokenizer())
    mmproj = write_mmproj(tmp_path / "mmproj.gguf", source, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    llava = load_vision_language(text, mmproj=mmproj, weights="as-stored")
    assert llava.model.text_model.weights_as_stored
    images = [_image(40, 25, seed=8)]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "and"}]}]
    engine = Engine(llava, num_blocks=64, block_size=4, max_num_batched_tokens=6)
    prompt = engine.vision.prompt(_text(llava, messages), [(image, "auto") for image in images])

    (output,) = engine.generate([prompt], GREEDY, progress=False)

    assert ops.forward_is_native(engine.pretrained.model)
    assert native_forward == []
    reference = llava.text_prompt(_text(llava, messages), images)
    assert output.completions[0].token_ids == llava.generate_greedy(reference, 32, stop_token_ids=())


def test_a_dense_weights_format_for_a_vision_language_model_is_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match="loads as-stored or dense in dtype"):
        Engine(str(build_tiny_vlm(tmp_path)), weights="bfloat16", num_blocks=16)
