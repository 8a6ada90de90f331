"""Chat extras through the server on tiny random models with a `<think>` template: add_generation_prompt,
continue_final_message, chat_template_kwargs, reasoning_content (whole and streamed) and the thinking budget
the engine enforces (exact, greedy and sampled, with preemption, prefix caching and speculative decoding),
for tags that are one token each and tags that are several; every bad value is an OpenAI-shaped 400."""

from __future__ import annotations

import json

import httpx
import pytest
from test_server import MODEL, LiveServer
from tokenizers import AddedToken

from llmkit.core import SamplingParams, generate, load_pretrained
from llmkit.core.sampling import ThinkingBudget
from llmkit.core.testing import tiny_tokenizer, write_tiny_model
from llmkit.serve.engine import Engine
from llmkit.serve.reasoning import EFFORT_BUDGETS, THINK, ReasoningStream, split_reply
from llmkit.serve.server.errors import APIError
from llmkit.serve.server.preparation import prepare_chat
from llmkit.serve.server.state import Server
from llmkit.serve.speculative import SpeculativeConfig

# Qwen3-like: reasoning of assistant turns after the last user turn is kept, earlier ones dropped;
# `enable_thinking=false` writes an empty section, `open_thinking` opens one in the generation prompt;
# it has a tool slot, so tool turns reach it as they are (not in the generic format).
THINK_TEMPLATE = """\
{%- if tools -%}{{- '<|im_start|>system\\n# Tools\\n' + (tools | tojson) + '<|im_end|>\\n' -}}{%- endif -%}
{%- set ns = namespace(last_user=-1) -%}
{%- for message in messages -%}{%- if message['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}
{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\\n' -}}
{%- if message['role'] == 'assistant' and message.get('reasoning_content') and loop.index0 > ns.last_user -%}
{{- '<think>\\n' + message['reasoning_content'] + '\\n</think>\\n\\n' -}}
{%- endif -%}
{{- message['content'] if message['content'] else '' -}}
{{- '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\\n' -}}
{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}
{%- if open_thinking is defined and open_thinking -%}{{- '<think>\\n' -}}{%- endif -%}
{%- endif -%}"""

USER = [{"role": "user", "content": "What is 2 + 3?"}]


def write_think_model(directory, single_token_tags: bool):
    """A tiny model whose template has `<think>`; its tokenizer holds the tags as single added tokens, or
    spells them with several BPE tokens."""
    path = write_tiny_model(directory, max_position_embeddings=2048, vocab_size=400)
    if single_token_tags:
        tokenizer = tiny_tokenizer(398)
        tokenizer.add_tokens([AddedToken(THINK.open, special=False), AddedToken(THINK.close, special=False)])
        assert tokenizer.get_vocab_size() == 400
        tokenizer.save(str(path / "tokenizer.json"))
    config = json.loads((path / "tokenizer_config.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": THINK_TEMPLATE}))
    return path


@pytest.fixture(scope="module", params=["single-token-tags", "multi-token-tags"])
def live(request, tmp_path_factory):
    path = write_think_model(tmp_path_factory.mktemp("think"), request.param == "single-token-tags")
    server = LiveServer(Engine(load_pretrained(path), num_blocks=256, max_num_seqs=8), max_waiting=64)
    close = server.engine.tokenizer.encode(THINK.close)
    assert (len(close) == 1) == (request.param == "single-token-tags")
    yield server
    server.stop()


def chat(live, **body):
    return httpx.post(f"{live.url}/v1/chat/completions", json={"model": MODEL, **body}, timeout=120)


def token_bytes(reply) -> list[bytes]:
    return [bytes(entry["bytes"]) for entry in reply["choices"][0]["logprobs"]["content"]]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_budget_closes_the_section_after_exactly_n_tokens(live, temperature):
    budget = 6
    close = THINK.close.encode()
    base = dict(messages=USER, max_tokens=30, ignore_eos=True, temperature=temperature, seed=5, logprobs=True)
    kwargs = {"open_thinking": True}
    free = chat(live, **base, chat_template_kwargs=kwargs).json()
    assert close not in b"".join(token_bytes(free))  # left alone, the random model never closes the section
    assert free["choices"][0]["message"]["content"] is None
    reply = chat(live, **base, chat_template_kwargs=kwargs, max_thinking_tokens=budget).json()
    tokens = token_bytes(reply)
    n_close = len(live.engine.tokenizer.encode(THINK.close))
    assert b"".join(tokens[budget : budget + n_close]) == close
    assert len(tokens) == 30
    # the same request through core's generate gives the token ids the message's text splits at
    job = prepare_chat(
        live.server, {"model": MODEL, **base, "chat_template_kwargs": kwargs, "max_thinking_tokens": budget}
    )
    tokenizer, pretrained = live.engine.tokenizer, live.engine.pretrained
    (ids,) = [c.token_ids for c in generate(pretrained.model, tokenizer, [job.prompt], job.params)[0].completions]
    assert ids[budget : budget + n_close] == tokenizer.encode(THINK.close)
    message = reply["choices"][0]["message"]
    assert message["reasoning_content"] == tokenizer.decode(ids[:budget])
    # (the detokenizer holds back a last token that ends inside a UTF-8 character)
    assert tokenizer.decode(ids[budget + n_close :]) in (message["content"], message["content"] + "\ufffd")
    live.wait_idle()


def test_reasoning_effort_maps_to_a_budget(live):
    body = dict(messages=USER, max_tokens=8, ignore_eos=True, temperature=0, chat_template_kwargs={"open_thinking": 1})
    job = prepare_chat(live.server, {"model": MODEL, **body, "reasoning_effort": "low"})
    assert job.params.thinking_budget.max_tokens == EFFORT_BUDGETS["low"] and job.params.thinking_budget.starts_open
    reply = chat(live, **body, reasoning_effort="high").json()
    assert reply["choices"][0]["message"]["content"] is None  # 8 tokens, all thinking within the budget


def test_budget_zero_and_a_continued_thinking_message(live):
    messages = [*USER, {"role": "assistant", "content": "<think>\nFirst, add"}]
    body = dict(messages=messages, add_generation_prompt=False, continue_final_message=True, max_tokens=20)
    reply = chat(live, **body, ignore_eos=True, temperature=0, max_thinking_tokens=0, logprobs=True).json()
    n_close = len(live.engine.tokenizer.encode(THINK.close))
    assert b"".join(token_bytes(reply)[:n_close]) == THINK.close.encode()
    assert reply["choices"][0]["message"]["reasoning_content"] == ""
    live.wait_idle()


def stream_deltas(live, **body) -> list[dict]:
    deltas = []
    with httpx.stream(
        "POST", f"{live.url}/v1/chat/completions", json={"model": MODEL, "stream": True, **body}, timeout=120
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:])["choices"]:
                    deltas.append(choice["delta"])
    return deltas


@pytest.mark.parametrize("budget", [None, 0, 4, 9])
def test_streamed_deltas_reassemble_to_the_whole_reply(live, budget):
    body = dict(
        messages=USER, max_tokens=24, ignore_eos=True, temperature=0, chat_template_kwargs={"open_thinking": True}
    )
    if budget is not None:
        body["max_thinking_tokens"] = budget
    message = chat(live, **body).json()["choices"][0]["message"]
    deltas = stream_deltas(live, **body)
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert reasoning == message["reasoning_content"]
    assert content == (message["content"] or "")
    kinds = [k for d in deltas for k in ("reasoning_content", "content") if d.get(k)]
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # all reasoning first, then content
    live.wait_idle()


def test_a_reply_without_a_section_is_all_content(live):
    body = dict(messages=USER, max_tokens=10, ignore_eos=True, temperature=0)
    message = chat(live, **body, chat_template_kwargs={"enable_thinking": False}).json()["choices"][0]["message"]
    assert "reasoning_content" not in message and message["content"]
    deltas = stream_deltas(live, **body, chat_template_kwargs={"enable_thinking": False})
    assert "".join(d.get("content") or "" for d in deltas) == message["content"]


def test_a_grammar_reply_is_content_even_after_an_open_section(live):
    kwargs = {"open_thinking": True}
    body = dict(messages=USER, max_tokens=40, temperature=0, chat_template_kwargs=kwargs)
    message = chat(live, **body, response_format={"type": "json_object"}).json()["choices"][0]["message"]
    assert "reasoning_content" not in message and isinstance(json.loads(message["content"]), dict)


def test_split_holds_back_a_partial_tag():
    for text in ["  <think>a</thi", "<think>abc</think>\n\nHello", "plain <think> text", "<thin", "", "\n<think>"]:
        for starts_open in (False, True):
            final = split_reply(text, THINK, starts_open)
            stream = ReasoningStream(THINK, starts_open)
            pieces = [stream.push(ch, i == len(text) - 1) for i, ch in enumerate(text)] or [stream.push("", True)]
            payloads = [p for piece in pieces for p in piece]
            assert "".join(p.get("reasoning_content", "") for p in payloads) == (final.reasoning or "")
            assert "".join(p.get("content", "") for p in payloads) == final.content
    assert split_reply("\n<think>why</think>so", THINK, False) == split_reply("why</think>so", THINK, True)


def test_prompt_extras_reach_the_template(live):
    tokenizer = live.engine.tokenizer

    def prompt_text(**extra):
        job = prepare_chat(live.server, {"model": MODEL, "messages": USER, **extra})
        return tokenizer.decode(job.prompt, skip_special_tokens=False)

    assert prompt_text().endswith("<|im_start|>assistant\n")
    assert prompt_text(add_generation_prompt=False).endswith("What is 2 + 3?<|im_end|>\n")
    assert prompt_text(chat_template_kwargs={"enable_thinking": False}).endswith("assistant\n<think>\n\n</think>\n\n")
    messages = [*USER, {"role": "assistant", "content": "The answer is"}]
    job = prepare_chat(
        live.server,
        {"model": MODEL, "messages": messages, "add_generation_prompt": False, "continue_final_message": True},
    )
    expected = "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\nThe answer is"
    assert job.prompt == tokenizer.encode(expected)
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(live.engine.pretrained.path / "tokenizer.json"))
    hf_ids = hf.apply_chat_template(
        messages, chat_template=THINK_TEMPLATE, add_generation_prompt=False, continue_final_message=True, tokenize=True
    )
    assert job.prompt == list(getattr(hf_ids, "input_ids", hf_ids))


CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def test_reasoning_of_the_current_tool_turn_is_carried(live):
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Sunny.", "reasoning_content": "an old thought"},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "assistant", "content": None, "reasoning_content": "ask the tool", "tool_calls": [CALL]},
        {"role": "tool", "content": "rain", "tool_call_id": "c1"},
    ]
    job = prepare_chat(live.server, {"model": MODEL, "messages": messages})
    text = live.engine.tokenizer.decode(job.prompt, skip_special_tokens=False)
    assert "an old thought" not in text and "<think>\nask the tool\n</think>" in text


BAD = [
    ({"add_generation_prompt": "yes"}, "add_generation_prompt"),
    ({"continue_final_message": 1}, "continue_final_message"),
    ({"continue_final_message": True}, "continue_final_message"),  # with the default add_generation_prompt
    ({"continue_final_message": True, "add_generation_prompt": False}, "continue_final_message"),  # user last
    ({"chat_template_kwargs": "enable_thinking"}, "chat_template_kwargs"),
    ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs"),
    ({"chat_template_kwargs": {"add_generation_prompt": False}}, "chat_template_kwargs"),
    ({"max_thinking_tokens": -1}, "max_thinking_tokens"),
    ({"max_thinking_tokens": "8"}, "max_thinking_tokens"),
    ({"max_thinking_tokens": 2.5}, "max_thinking_tokens"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"max_thinking_tokens": 8, "reasoning_effort": "low"}, "max_thinking_tokens"),
    ({"max_thinking_tokens": 8, "response_format": {"type": "json_object"}}, "max_thinking_tokens"),
    ({"messages": [{"role": "user", "content": "hi", "reasoning_content": 3}]}, "messages.0.reasoning_content"),
]


@pytest.mark.parametrize(("extra", "param"), BAD)
def test_bad_values_are_openai_shaped_400s(live, extra, param):
    response = chat(live, **{"messages": USER, "max_tokens": 4, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]


def test_a_budget_needs_a_template_with_a_thinking_section(tiny):
    server = Server(Engine(tiny, num_blocks=16), MODEL)  # ChatML: no <think>
    for extra, param in (({"max_thinking_tokens": 4}, "max_thinking_tokens"), ({"reasoning_effort": "low"}, "reasoning_effort")):  # fmt: skip
        with pytest.raises(APIError) as caught:
            prepare_chat(server, {"model": MODEL, "messages": USER, **extra})
        assert caught.value.status == 400 and caught.value.param == param
        assert "thinking section" in str(caught.value)
    assert prepare_chat(server, {"model": MODEL, "messages": USER}).reasoning is None


@pytest.mark.parametrize(
    "config",
    [
        dict(num_blocks=12, max_num_batched_tokens=64),  # preemption (recompute)
        dict(num_blocks=256, max_num_batched_tokens=16),  # chunked prefill, shared prefixes from the cache
        dict(num_blocks=128, speculative=SpeculativeConfig("ngram", num_tokens=4, ngram_min=1)),
    ],
    ids=["preemption", "prefix-cache", "speculative"],
)
def test_engine_enforces_the_budget_like_core_generate(tiny, config):
    tokenizer = tiny.tokenizer
    open_ids, close_ids = tuple(tokenizer.encode(THINK.open)), tuple(tokenizer.encode(THINK.close))
    shared = tokenizer.encode("The quick brown fox jumps over the lazy dog. " * 2)
    prompts = [shared + tokenizer.encode(f"<think>\nstep {i} 5 6 7 5 6 7 5 6 7") for i in range(10)]
    sampled = "speculative" not in config  # speculative sampling keeps the distribution, not the very draws
    params = [
        SamplingParams(
            temperature=0.9 if sampled and i % 2 else 0,
            seed=i,
            max_tokens=24,
            ignore_eos=True,
            thinking_budget=ThinkingBudget(i, open_ids, close_ids, starts_open=True),
        )
        for i in range(len(prompts))
    ]
    engine = Engine(tiny, **config)
    got = [o.completions[0].token_ids for o in engine.generate(prompts, params, progress=False)]
    expected = [generate(tiny.model, tiny.tokenizer, [p], q)[0].completions[0].token_ids for p, q in zip(prompts, params, strict=True)]  # fmt: skip
    assert got == expected
    for i, ids in enumerate(got):
        assert tuple(ids[i : i + len(close_ids)]) == close_ids
    if "speculative" not in config:
        stats = engine.stats()
        assert stats.preemptions > 0 if config["num_blocks"] == 12 else stats.prefix_cache_hit_blocks > 0
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks
