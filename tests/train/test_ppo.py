"""PPO on a tiny model: one update on a fixed batch moves the policy the way the advantages point, a
step's metrics carry the mean reward, the KL and the value head's explained variance, and the value head
(at its own learning rate) learns a reward it can see."""

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


def asks_about_cats(prompt, completion, reference):
    """1 for every completion of a prompt about cats, 0 otherwise: a reward the value head sees from the
    prompt's first token on, whatever the policy writes."""
    return VerifierResult.from_bool("cats" in str(prompt))


class ToyVerifier:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        register("starts_with_a_vowel", starts_with_a_vowel)
        register("asks_about_cats", asks_about_cats)


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


def cats_or_numbers_trainer(fast, tmp_path, value_lr: float) -> Trainer:
    """The same 16 prompts every step, half about cats (reward 1), half asking for a number (reward 0)."""
    data = tmp_path / f"kinds-{value_lr}.jsonl"
    kinds = ["Tell me about cats", "Give me a number"]
    data.write_text("".join(f'{{"prompt": "{kinds[i % 2]} {i}:"}}\n' for i in range(16)))
    options = {
        **fast, "output_dir": str(tmp_path / f"run-{value_lr}"), "data": str(data), "batch_size": 16,
        "max_new_tokens": 6, "kv_cache_memory": "16MiB", "micro_batch_size": 16,
        "verifiers": {"asks_about_cats": 1.0}, "num_ppo_epochs": 2, "num_mini_batches": 1,
        "learning_rate": 1e-4, "value_lr": value_lr, "lr_scheduler": "constant", "max_steps": 8,
    }  # fmt: skip
    return Trainer(PPOMethod, load_config(PPOConfig, None, options))


def explained_variance_per_step(trainer: Trainer) -> list[float]:
    """Each step's explained variance: the value head before that step's updates, on fresh rollouts."""
    out = []
    for step in range(trainer.config.max_steps):
        record, _ = trainer._step(step)
        assert record["reward_mean"] == 0.5  # the reward is the prompt's kind, never the completion
        out.append(record["value_explained_variance"])
    return out


def test_value_head_learns_a_reward_it_can_see(fast, tmp_path):
    """At its own rate the value head explains most of the return's variance within a few steps; at the
    policy's rate (what every PPO run did before `value_lr`) it stays near 0, and PPO degenerates into
    REINFORCE with a batch-mean baseline."""
    own_rate = explained_variance_per_step(cats_or_numbers_trainer(fast, tmp_path, value_lr=1e-2))
    policy_rate = explained_variance_per_step(cats_or_numbers_trainer(fast, tmp_path, value_lr=1e-4))
    assert min(own_rate[-3:]) > 0.5, own_rate
    assert max(policy_rate) < 0.3, policy_rate


def test_the_value_head_trains_at_value_lr(trainer):
    """Its own optimizer groups at value_lr, the policy's at learning_rate, both under the one schedule."""
    head = {id(p) for p in trainer.method.module.value_head.parameters()}
    groups = trainer.optimizer.param_groups
    assert groups[0]["lr"] == trainer.config.learning_rate == 1e-4
    assert trainer.config.value_lr == 1e-3  # the default
    for group in groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= head if group["lr"] == trainer.config.value_lr else not ids & head
    assert {id(p) for g in groups if g["lr"] == 1e-3 for p in g["params"]} == head
