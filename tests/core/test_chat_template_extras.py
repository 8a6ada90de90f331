"""Chat extras in core: `continue_final_message` (checked against HF transformers' rendering), extra template
variables, and the thinking budget as a pure function of a sequence's output ids."""

from __future__ import annotations

import pytest
import torch

from llmkit.core import ChatTemplate, ChatTemplateError, InvalidParameterError
from llmkit.core.chat_template import builtin_template_source
from llmkit.core.generate import generate
from llmkit.core.sampling import SamplingParams, ThinkingBudget, force_thinking_budgets

# Qwen3-like: reasoning of assistant turns after the last user turn is kept, earlier ones dropped;
# `enable_thinking=false` writes an empty section, `open_thinking` opens one in the generation prompt.
THINK_TEMPLATE = """\
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

CONVERSATIONS = [
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "The colour is"}],
    [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2, "}],  # trailing space kept
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello", "reasoning_content": "greet back"},
    ],
]


@pytest.mark.parametrize("source", [builtin_template_source("chatml"), THINK_TEMPLATE], ids=["chatml", "think"])
@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_continue_final_message_matches_transformers(tiny_model_dir, source, messages):
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tiny_model_dir / "tokenizer.json"))
    expected = hf.apply_chat_template(
        messages, chat_template=source, tokenize=False, add_generation_prompt=False, continue_final_message=True
    )
    text = ChatTemplate(source).render(messages, add_generation_prompt=False, continue_final_message=True)
    assert text == expected
    assert not text.endswith("<|im_end|>\n")
    assert hf.encode(text, add_special_tokens=False) == hf.encode(expected, add_special_tokens=False)


def test_chat_prompt_continues_the_final_message(tiny):
    messages = CONVERSATIONS[0]
    continued = tiny.chat_prompt(messages, add_generation_prompt=False, continue_final_message=True)
    whole = tiny.chat_prompt(messages, add_generation_prompt=False)
    assert tiny.tokenizer.decode(continued, skip_special_tokens=False).endswith("The colour is")
    assert len(continued) < len(whole)


def test_continue_final_message_refusals():
    template = ChatTemplate(THINK_TEMPLATE)
    with pytest.raises(ChatTemplateError, match="cannot both be set"):
        template.render(CONVERSATIONS[0], continue_final_message=True)
    with pytest.raises(ChatTemplateError, match="assistant message last"):
        template.render(CONVERSATIONS[0][:1], add_generation_prompt=False, continue_final_message=True)
    dropping = ChatTemplate("{% for m in messages %}{{ m['role'] }}{% endfor %}")
    with pytest.raises(ChatTemplateError, match="does not write the final message"):
        dropping.render(CONVERSATIONS[0], add_generation_prompt=False, continue_final_message=True)


def test_template_variables_reach_the_template_and_may_not_replace_its_own():
    template = ChatTemplate(THINK_TEMPLATE)
    messages = [{"role": "user", "content": "hi"}]
    assert template.render(messages).endswith("<|im_start|>assistant\n")
    assert template.render(messages, enable_thinking=False).endswith("assistant\n<think>\n\n</think>\n\n")
    assert template.render(messages, open_thinking=True).endswith("assistant\n<think>\n")
    for name in ("messages", "tools", "add_generation_prompt", "bos_token", "raise_exception"):
        with pytest.raises(ChatTemplateError, match=f"template variables {name} are set by the renderer"):
            template.render(messages, extra_variables={name: 1})


def test_reasoning_of_the_current_turn_is_kept_and_earlier_turns_dropped():
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Sunny.", "reasoning_content": "old thought"},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "assistant", "content": None, "reasoning_content": "call the tool", "tool_calls": [{"id": "1"}]},
        {"role": "tool", "content": "rain", "tool_call_id": "1"},
    ]
    text = ChatTemplate(THINK_TEMPLATE).render(messages)
    assert "old thought" not in text and "<think>\ncall the tool\n</think>" in text


CLOSE = (7, 8, 9)


@pytest.mark.parametrize("close", [(7,), CLOSE], ids=["one-token-tag", "three-token-tag"])
def test_budget_closes_an_open_section_after_exactly_n_tokens(close):
    budget = ThinkingBudget(3, open_ids=(5,), close_ids=close, starts_open=True)
    output: list[int] = []
    for free in (11, 12, 13):
        assert budget.forced_token(output) is None
        output.append(free)
    for tag_token in close:
        assert budget.forced_token(output) == tag_token
        output.append(tag_token)
    assert budget.forced_token(output) is None  # after the section, decoding is free
    assert budget.forced_token([*output, 5, 1, 2, 3, 4]) is None  # only the first section is budgeted


def test_budget_counts_from_the_opening_tag_in_the_output():
    budget = ThinkingBudget(2, open_ids=(5, 6), close_ids=CLOSE)
    assert budget.forced_token([1, 2, 3, 4]) is None  # no section opened
    assert budget.forced_token([1, 5, 6, 20]) is None
    assert budget.forced_token([1, 5, 6, 20, 21]) == 7
    assert budget.forced_token([1, 5, 6, 20, 21, 7, 8]) == 9
    assert budget.forced_token([1, 5, 6, 7, 8, 9, 30, 31, 32]) is None  # the model closed it in budget
    zero = ThinkingBudget(0, open_ids=(5,), close_ids=CLOSE)
    assert zero.forced_token([5]) == 7


def test_budget_validation():
    with pytest.raises(InvalidParameterError, match="integer >= 0"):
        ThinkingBudget(-1, open_ids=(5,), close_ids=(6,))
    with pytest.raises(InvalidParameterError, match="token ids of both"):
        ThinkingBudget(1, open_ids=(), close_ids=(6,))
    with pytest.raises(InvalidParameterError, match="thinking_budget must be"):
        SamplingParams(thinking_budget=3)


def test_force_keeps_only_the_forced_token():
    logits = torch.randn(2, 16)
    before = logits.clone()
    budget = ThinkingBudget(0, open_ids=(5,), close_ids=CLOSE, starts_open=True)
    force_thinking_budgets(logits, [budget, None], [[], []])
    assert logits[0].argmax() == 7 and torch.isinf(logits[0]).sum() == 15
    assert torch.equal(logits[1], before[1])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_core_generate_enforces_the_budget(tiny, temperature):
    close = tuple(tiny.tokenizer.encode("</think>"))
    budget = ThinkingBudget(4, open_ids=tuple(tiny.tokenizer.encode("<think>")), close_ids=close, starts_open=True)
    params = SamplingParams(temperature=temperature, seed=3, max_tokens=12, ignore_eos=True, thinking_budget=budget)
    (out,) = generate(tiny.model, tiny.tokenizer, ["<think>\n"], params)
    assert tuple(out.completions[0].token_ids[4 : 4 + len(close)]) == close
