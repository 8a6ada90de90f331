"""Image and page items in a ContextWindow: their real token counts from the model's image processor (the total
equals the prompt core builds from the rendered messages), budgets and eviction over them, PDF pages, session
files and `llmkit context inspect` counting them."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from serve.image_model import build_tiny_vlm

from llmkit.context import ContextError, ContextWindow, TokenCounter, add_image, add_pdf, load_session, save_session
from llmkit.core.cli import main
from llmkit.core.documents import write_text_pdf
from llmkit.core.models.vision.pretrained import load_vision_language


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    return load_vision_language(build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm-context")))


def _png(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _window(vlm, budget: int = 1500, **zones: int) -> ContextWindow:
    counter = TokenCounter.for_vision_language(vlm)
    window = ContextWindow(counter, budget=budget, zones=zones, constraint_detectors=())
    window.system = "You describe images."
    return window


def _prompt_tokens(vlm, rendered, detail: str) -> int:
    return len(vlm.chat_prompt(rendered.messages, rendered.images, detail=detail).token_ids)


def test_image_items_cost_what_the_model_prompt_costs(vlm):
    window = _window(vlm)
    wide = _png(90, 30, seed=1)
    item = add_image(window, wide, "wide.png", detail="high", caption="what is in this picture?")
    window.add_message("assistant", "a square")
    add_image(window, _png(40, 40, seed=2), "tall.png", detail="high")

    rendered = window.render("and this one?")

    assert item.metadata["image_tokens"] == vlm.num_image_tokens(wide, "high") > 3 * 4  # several tiles of 4 tokens
    assert rendered.total_tokens == _prompt_tokens(vlm, rendered, "high")  # exact, image tokens included
    assert len(rendered.images) == 2 and rendered.images[0] == wide
    text_only = window.counter.count(rendered.messages[1]["content"][1]["text"])
    assert rendered.zone_tokens["history"] >= item.metadata["image_tokens"] + text_only


def test_the_budget_evicts_the_oldest_images_by_their_real_cost(vlm):
    def filled(budget: int) -> tuple[ContextWindow, list]:
        window = _window(vlm, budget, history=budget)
        return window, [add_image(window, _png(60, 60, seed=s), f"img{s}.png", detail="high") for s in range(3)]

    full = filled(4000)[0].render("compare them")
    window, items = filled(full.total_tokens - 1)  # one token short: one image must go, the oldest
    image_tokens = items[0].metadata["image_tokens"]

    rendered = window.render("compare them")

    assert [d.description for d in rendered.dropped] == ["turn 1 user"]
    assert rendered.dropped[0].tokens == image_tokens
    assert len(rendered.images) == 2 and rendered.images[0] == window.images[items[1].item_id]
    assert rendered.total_tokens == _prompt_tokens(vlm, rendered, "high") <= window.budget


def test_pdf_pages_are_page_items_in_one_turn(vlm):
    window = _window(vlm, budget=4000)
    pdf = write_text_pdf(["Invoice 1042\nTotal due: 318 euros", "Terms: 30 days."])
    pages = add_pdf(window, pdf, source="invoice.pdf", strategy="both", detail="low")

    rendered = window.render("what is the total?")

    assert [p.kind for p in pages] == ["page", "page"] and {p.turn for p in pages} == {1}
    assert pages[0].content.startswith("[invoice.pdf, page 1]\nInvoice 1042")
    assert rendered.total_tokens == _prompt_tokens(vlm, rendered, "low")
    text = add_pdf(_window(vlm), pdf, source="invoice.pdf", strategy="text")
    assert [p.kind for p in text] == ["message", "message"]


def test_a_session_file_keeps_the_counts_and_inspect_shows_them(vlm, tmp_path, capsys):
    window = _window(vlm)
    add_image(window, _png(70, 50, seed=5), "photo.png", detail="high", caption="describe it")
    rendered = window.render("go on")
    save_session(window, tmp_path / "session.json", current="go on")

    loaded, current = load_session(tmp_path / "session.json", TokenCounter.for_vision_language(vlm))
    again = loaded.render(current)
    assert again.total_tokens == rendered.total_tokens and again.images == [None]  # counts kept, not pixels

    assert main(["context", "inspect", str(tmp_path / "session.json"), "-m", str(vlm.path), "--json"]) in (0, 1)
    record = json.loads(capsys.readouterr().out)
    assert record["zone_tokens"]["history"] == rendered.zone_tokens["history"]
    assert record["total_tokens"] == rendered.total_tokens


def test_a_counter_without_an_image_processor_refuses_images(vlm):
    window = ContextWindow(vlm.tokenizer, budget=500)
    with pytest.raises(ContextError, match="cannot count images"):
        add_image(window, _png(10, 10, seed=0), "x.png")
