"""Each loss against its published formula on fixed tensors, with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from llmkit.train.losses import (
    AdaptiveKLController,
    aggregate_token_loss,
    bradley_terry_loss,
    dpo_loss,
    generalized_advantages,
    group_advantages,
    grpo_token_loss,
    kl_estimate,
    ppo_policy_loss,
    ppo_value_loss,
    whiten,
)
from llmkit.train.optim import learning_rate_factor

T = torch.tensor


def close(a, b, tol=1e-6):
    torch.testing.assert_close(
        torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol, rtol=tol
    )


def test_bradley_terry():
    # -log sigmoid(1) = log(1 + e^-1)
    close(bradley_terry_loss(T([1.0]), T([0.0])), [math.log(1 + math.exp(-1))])
    close(bradley_terry_loss(T([1.0]), T([0.0]), margin=T([0.5])), [math.log(1 + math.exp(-0.5))])
    # centering adds c * (r_c + r_r)^2 = 0.01 * 1
    close(bradley_terry_loss(T([1.0]), T([0.0]), center_rewards_coefficient=0.01), [0.31326168751822286 + 0.01])


def test_dpo_losses():
    # h = (pi_c - ref_c) - (pi_r - ref_r) = (-1 + 2) - (-3 + 2) = 2
    args = (T([-1.0]), T([-3.0]), T([-2.0]), T([-2.0]))
    loss, chosen, rejected = dpo_loss(*args, beta=0.5, loss_type="sigmoid")
    close(loss, [math.log(1 + math.exp(-1.0))])  # -log sigmoid(beta h) = -log sigmoid(1)
    close(chosen, [0.5])
    close(rejected, [-0.5])
    smoothed = 0.9 * math.log(1 + math.exp(-1.0)) + 0.1 * math.log(1 + math.exp(1.0))
    close(dpo_loss(*args, beta=0.5, loss_type="sigmoid", label_smoothing=0.1)[0], [smoothed])
    close(dpo_loss(*args, beta=0.5, loss_type="ipo")[0], [(2 - 1 / (2 * 0.5)) ** 2])
    close(dpo_loss(*args, beta=0.5, loss_type="hinge")[0], [0.0])
    close(dpo_loss(*args, beta=0.25, loss_type="hinge")[0], [0.5])
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(*args, beta=0.5, loss_type="kto")


def test_kl_estimators():
    # log ratio ref - pi = -0.5: k1 = 0.5, k3 = e^-0.5 - 1 + 0.5
    close(kl_estimate(T([-1.0]), T([-1.5]), "k1"), [0.5])
    close(kl_estimate(T([-1.0]), T([-1.5]), "k3"), [math.exp(-0.5) - 0.5])
    close(kl_estimate(T([-1.0]), T([-1.0]), "k3"), [0.0])


def test_gae_by_hand():
    rewards, values, mask = T([[0.0, 0.0, 1.0, 0.0]]), T([[0.5, 0.6, 0.7, 9.0]]), T([[1.0, 1.0, 1.0, 0.0]])
    advantages, returns = generalized_advantages(rewards, values, mask, gamma=1.0, lam=0.95)
    # t2: 1 - 0.7 = 0.3; t1: (0.7 - 0.6) + 0.95 * 0.3 = 0.385; t0: (0.6 - 0.5) + 0.95 * 0.385 = 0.46575
    close(advantages, [[0.46575, 0.385, 0.3, 0.0]])
    close(returns, [[0.96575, 0.985, 1.0, 0.0]])
    discounted, _ = generalized_advantages(rewards, values, mask, gamma=0.5, lam=1.0)
    # lam 1: A_t = sum_k gamma^k r_{t+k} - V_t
    close(discounted, [[0.25 - 0.5, 0.5 - 0.6, 1.0 - 0.7, 0.0]])


def test_ppo_clipped_losses():
    loss, clipped = ppo_policy_loss(T([math.log(1.5), math.log(1.5)]), T([0.0, 0.0]), T([2.0, -1.0]), 0.2)
    close(loss, [-2.4, 1.5])  # max(-A r, -A clip(r)): A=2 -> max(-3, -2.4); A=-1 -> max(1.5, 1.2)
    close(clipped, [1.0, 0.0])
    loss, clipped = ppo_value_loss(T([2.0]), T([1.0]), T([3.0]), 0.5)
    close(loss, [0.5 * (1.5 - 3.0) ** 2])
    close(clipped, [1.0])


def test_whiten():
    values, mask = T([[1.0, 2.0, 3.0, 100.0]]), T([[1.0, 1.0, 1.0, 0.0]])
    close(whiten(values, mask), [[-1.0, 0.0, 1.0, 0.0]], tol=1e-4)


def test_adaptive_kl_controller():
    controller = AdaptiveKLController(0.1, target=1.0, horizon=10)
    close(controller.update(current_kl=2.0, num_sequences=5), 0.1 * (1 + 0.2 * 5 / 10))  # error clipped to 0.2
    fixed = AdaptiveKLController(0.1, target=0.0, horizon=10)
    close(fixed.update(5.0, 100), 0.1)


def test_group_advantages():
    rewards = T([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    advantages, flat = group_advantages(rewards, 4, "group")
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    close(
        advantages,
        [0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 1 + [-0.5 / (std + 1e-4), 0.5 / (std + 1e-4)] + [0.0] * 4,
    )
    assert flat == 1
    close(group_advantages(rewards, 4, "none")[0], [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])
    batch_std = float(rewards.std())
    close(group_advantages(rewards, 4, "batch")[0][:1], [0.5 / (batch_std + 1e-4)])


def test_grpo_token_loss_clip_and_kl():
    logp, old = T([[0.1, math.log(0.7)]]), T([[0.0, 0.0]])
    loss, _ = grpo_token_loss(logp, old, T([1.0]), 0.2, 0.05)
    close(loss[0, 0], -1.05)  # ratio e^0.1 = 1.105 clipped at 1 + 0.05 for a positive advantage
    loss, _ = grpo_token_loss(logp, old, T([1.0]), 0.2, 0.2)
    close(loss[0, 0], -math.exp(0.1))
    loss, _ = grpo_token_loss(logp, old, T([-1.0]), 0.2, 0.2)
    close(loss[0, 1], 0.8)  # ratio 0.7 clipped at 1 - 0.2 for a negative advantage: -min(-0.7, -0.8)
    ref = T([[0.0, 0.0]])
    loss, kl = grpo_token_loss(logp, old, T([0.0]), 0.2, 0.2, beta=0.1, reference_logprobs=ref)
    close(kl[0, 0], math.exp(-0.1) + 0.1 - 1)
    close(loss[0, 0], 0.1 * (math.exp(-0.1) + 0.1 - 1))


def test_loss_aggregations():
    per_token, mask = T([[1.0, 2.0, 5.0], [3.0, 7.0, 7.0]]), T([[1, 1, 0], [1, 0, 0]]).bool()
    total, units = aggregate_token_loss(per_token, mask, "sequence_mean", 4)
    close(total / units, (1.5 + 3.0) / 2)
    total, units = aggregate_token_loss(per_token, mask, "token_mean", 4)
    close(total / units, 6.0 / 3)
    total, units = aggregate_token_loss(per_token, mask, "constant", 4)
    close(total / units, 6.0 / (2 * 4))


def test_learning_rate_schedule():
    assert learning_rate_factor(0, 10, 2, "cosine", 0.0) == 0.5
    assert learning_rate_factor(1, 10, 2, "cosine", 0.0) == 1.0
    assert learning_rate_factor(2, 10, 2, "cosine", 0.0) == 1.0
    close(learning_rate_factor(6, 10, 2, "cosine", 0.0), 0.5)  # halfway through the decay
    close(learning_rate_factor(6, 10, 2, "linear", 0.1), 0.1 + 0.9 * 0.5)
    assert learning_rate_factor(9, 10, 0, "constant", 0.0) == 1.0
    assert learning_rate_factor(9, 10, 0, "cosine", 0.0) > 0  # the last update still moves
