"""PPO and GRPO on tiny models: the engine runs the policy's own weights and forgets its prefix cache after
every update, rewards come from verifiers by name, GRPO raises the reward, zero losses are explained."""

from __future__ import annotations

import pytest

from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.verifiers import VerifierResult
from llmkit.train import train
from llmkit.train.config import GRPOConfig, load_config
from llmkit.train.loop import Trainer
from llmkit.train.methods import GRPOMethod
from llmkit.train.metrics import read_metrics


def vowel_share(prompt, completion, reference):
    """A dense toy reward: the share of vowels among the completion's letters."""
    letters = [c for c in completion.lower() if c.isalpha()]
    return VerifierResult(False, sum(c in "aeiou" for c in letters) / len(letters) if letters else 0.0)


class ToyVerifiers:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        register("vowel_share", vowel_share)
        register("always_zero", lambda prompt, completion, reference: VerifierResult.from_bool(False))


@pytest.fixture(scope="module")
def plain_prompts(tmp_path_factory):
    """Prompts that name no verifier, so the config's `verifiers` apply."""
    path = tmp_path_factory.mktemp("data") / "plain.jsonl"
    path.write_text("".join(f'{{"prompt": "Say something about {i}:"}}\n' for i in range(8)))
    return path


@pytest.fixture(scope="module", autouse=True)
def toy_verifiers():
    register_plugin(ToyVerifiers(), "toy-verifiers")
    yield
    unregister_plugin("toy-verifiers")


def rl_options(fast, data, **extra):
    return {
        **fast, "data": str(data), "batch_size": 2, "max_new_tokens": 8, "kv_cache_memory": "16MiB",
        "micro_batch_size": 4, **extra,
    }  # fmt: skip


def test_engine_shares_weights_and_forgets_its_prefix_cache_each_update(fast, prompt_data, monkeypatch):
    options = rl_options(fast, prompt_data, max_steps=2, num_generations=2, num_iterations=2, beta=0.0)
    trainer = Trainer(GRPOMethod, load_config(GRPOConfig, None, options))
    engine = trainer.method.engine.engine
    assert engine.pretrained is trainer.runtime.pretrained
    policy = dict(trainer.runtime.policy.named_parameters())
    for name, param in engine.pretrained.model.named_parameters():
        assert param.data_ptr() == policy[name].data_ptr()  # the very same storage: no copy
    resets = []
    real_reset = engine.block_manager.reset_prefix_cache
    monkeypatch.setattr(engine.block_manager, "reset_prefix_cache", lambda: resets.append(1) or real_reset())
    trainer.train()
    assert len(resets) == 2 * 2  # every optimizer update (2 steps x num_iterations 2)


def test_grpo_raises_the_verifier_reward(fast, plain_prompts):
    result = train(
        "grpo",
        **rl_options(
            fast, plain_prompts, max_steps=12, num_generations=6, verifiers={"vowel_share": 1.0}, beta=0.0,
            learning_rate=3e-2, lr_scheduler="constant", max_new_tokens=6,
        ),
    )  # fmt: skip
    rewards = [r["reward_mean"] for r in read_metrics(result.output_dir)]
    assert sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4 + 0.05
    record = read_metrics(result.output_dir)[-1]
    for key in ("rollout_time", "update_time", "kl", "clip_fraction", "reward_std", "verifier_vowel_share"):
        assert key in record


def test_zero_loss_is_explained(fast, plain_prompts, capsys):
    result = train(
        "grpo",
        **rl_options(fast, plain_prompts, max_steps=1, num_generations=2, verifiers={"always_zero": 1.0}, beta=0),
    )
    assert read_metrics(result.output_dir)[0]["loss"] == 0.0
    err = capsys.readouterr().err
    assert "all 2 groups have equal rewards" in err and "the loss is exactly 0" in err


@pytest.mark.parametrize("aggregation", ["sequence_mean", "constant"])
def test_grpo_aggregations_and_batch_scaling(fast, plain_prompts, aggregation):
    result = train(
        "grpo",
        **rl_options(
            fast, plain_prompts, max_steps=1, num_generations=3, verifiers={"vowel_share": 1.0},
            loss_aggregation=aggregation, scale_rewards="batch", epsilon_high=0.28,
        ),
    )  # fmt: skip
    record = read_metrics(result.output_dir)[0]
    assert record["grad_norm"] > 0 and abs(record["loss"]) < 10


def test_ppo_with_a_trained_reward_model(fast, preference_data, prompt_data, tmp_path):
    reward = train("reward", data=str(preference_data), max_steps=2, batch_size=4, **fast)
    result = train(
        "ppo",
        **rl_options(
            {**fast, "output_dir": str(tmp_path / "ppo")}, prompt_data, max_steps=2, reward_model=str(reward.output_dir),
            kl_estimator="k3", target_kl=0.01, num_ppo_epochs=2, num_mini_batches=2, micro_batch_size=1,
            missing_eos_penalty=1.0,
        ),
    )  # fmt: skip
    records = read_metrics(result.output_dir)
    for key in ("policy_loss", "value_loss", "clip_fraction", "approx_kl", "reward_model_score", "kl", "kl_coef"):
        assert key in records[-1]
    assert records[1]["kl_coef"] != records[0]["kl_coef"]  # the adaptive controller moved
    assert (result.final_dir / "value_head.safetensors").is_file()


def test_ppo_without_a_reward_is_refused(fast, tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "hi"}\n')
    with pytest.raises(Exception, match="ppo needs a reward"):
        train("ppo", **rl_options(fast, data, max_steps=1))
