"""PPO on a tiny model: one update on a fixed batch moves the policy the way the advantages point, and a
step's metrics carry the mean reward, the KL and the value head's explained variance."""

from __future__ import annotations

import pytest
import torch

from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.verifiers import VerifierResult
from llmkit.train.config import PPOConfig, load_config
from llmkit.train.data.packing import collate
from llmkit.train.loop import Trainer
from llmkit.train.methods import PPOMethod


def starts_with_a_vowel(prompt, completion, reference):
    """A binary toy reward, so that a batch of random completions has winners and losers."""
    letters = [c for c in completion.lower() if c.isalpha()]
    return VerifierResult.from_bool(bool(letters) and letters[0] in "aeiou")


class ToyVerifier:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        register("starts_with_a_vowel", starts_with_a_vowel)


@pytest.fixture(scope="module", autouse=True)
def toy_verifier():
    register_plugin(ToyVerifier(), "toy-ppo-verifier")
    yield
    unregister_plugin("toy-ppo-verifier")


@pytest.fixture
def trainer(fast, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(f'{{"prompt": "Write a word about {i}:"}}\n' for i in range(16)))
    options = {
        **fast, "data": str(data), "batch_size": 16, "max_new_tokens": 6, "kv_cache_memory": "16MiB",
        "micro_batch_size": 8, "verifiers": {"starts_with_a_vowel": 1.0}, "num_ppo_epochs": 1,
        "num_mini_batches": 1, "learning_rate": 1e-4, "lr_scheduler": "constant", "max_steps": 1,
    }  # fmt: skip
    return Trainer(PPOMethod, load_config(PPOConfig, None, options))


def completion_logprobs(trainer, scored) -> list[torch.Tensor]:
    """Each rollout's per-completion-token log-probs under the current policy."""
    method = trainer.method
    with torch.no_grad():
        out = []
        for item in scored:
            batch = collate([[item.rollout.sequence()]], trainer.runtime.pad_id)
            logprobs, _ = method.module.evaluate_tokens(batch)
            out.append(logprobs[batch.targets])
    return out


def test_one_update_moves_log_probs_with_the_advantages(trainer, monkeypatch):
    """Tokens with a positive advantage become likelier, those with a negative one less likely."""
    method = trainer.method
    captured = {}
    whiten = method._whiten

    def keep_scored(scored):
        whiten(scored)
        captured["scored"] = scored

    monkeypatch.setattr(method, "_whiten", keep_scored)
    plan = method.plan_step(0)
    scored = captured["scored"]
    assert 0 < plan.metrics["reward_mean"] < 1  # winners and losers in the batch
    returns = torch.cat([s.returns for s in scored]).double()
    values = torch.cat([s.old_values for s in scored]).double()
    explained = 1 - (returns - values).var(unbiased=False) / returns.var(unbiased=False)
    assert plan.metrics["value_explained_variance"] == pytest.approx(float(explained), abs=1e-9)
    before = completion_logprobs(trainer, scored)
    for old, item in zip(before, scored, strict=True):  # the update starts at ratio 1
        torch.testing.assert_close(old, item.old_logprobs, atol=1e-4, rtol=0)
    assert len(plan.updates) == 1
    trainer._update(plan.updates[0])
    after = completion_logprobs(trainer, scored)
    change = torch.cat([a - b for a, b in zip(after, before, strict=True)])
    advantages = torch.cat([s.advantages for s in scored])
    positive, negative = advantages > 0.5, advantages < -0.5
    assert positive.sum() >= 5 and negative.sum() >= 5
    assert change[positive].mean() > 0 > change[negative].mean()
    assert (advantages * change).sum() > 0  # the surrogate objective rose
    assert change.abs().max() > 1e-3  # the policy moved, not just rounding


def test_step_metrics_include_reward_kl_and_explained_variance(trainer):
    record, _ = trainer._step(0)
    assert 0 <= record["reward_mean"] <= 1 and record["kl"] == pytest.approx(0.0, abs=1e-6)  # policy = reference
    explained = record["value_explained_variance"]
    assert explained == explained and explained <= 1.0  # a number (not NaN): the returns vary
