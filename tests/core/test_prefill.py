"""Assistant prefill from the Python API: `ModelBackend.chat(prefill=...)` continues the final assistant
message through the chat template's continue_final_message, as the server does."""

from __future__ import annotations

from llmkit.core import SamplingParams, generate
from llmkit.core.backends import ModelBackend

CONVERSATION = [{"role": "user", "content": "What is 2 + 3?"}]
GREEDY = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)


def test_prefill_continues_the_assistant_message(tiny):
    backend = ModelBackend(tiny)
    result = backend.chat([CONVERSATION], GREEDY, prefill="The answer is")[0]
    continued = tiny.chat_prompt(
        [*CONVERSATION, {"role": "assistant", "content": "The answer is"}],
        add_generation_prompt=False,
        continue_final_message=True,
    )
    assert tiny.tokenizer.decode(continued).endswith("The answer is")
    expected = generate(tiny.model, tiny.tokenizer, [continued], GREEDY)[0].completions[0]
    assert result.choices[0].token_ids == expected.token_ids
    assert result.prompt_tokens == len(continued)
    assert result.message.content == "The answer is" + result.choices[0].text


def test_without_prefill_the_reply_opens_a_new_turn(tiny):
    result = ModelBackend(tiny).chat([CONVERSATION], GREEDY)[0]
    assert result.prompt_tokens == len(tiny.chat_prompt(CONVERSATION))
