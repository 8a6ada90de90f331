"""Pairwise preference losses: Bradley-Terry for reward models, and DPO with its sigmoid, IPO and hinge forms."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_rewards_coefficient: float = 0.0,
) -> torch.Tensor:
    """Per pair: -log sigmoid(r_chosen - r_rejected - margin) + c * (r_chosen + r_rejected)^2."""
    difference = chosen - rejected
    if margin is not None:
        difference = difference - margin
    loss = -F.logsigmoid(difference)
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * (chosen + rejected) ** 2
    return loss


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair loss and the implicit rewards beta * (log pi - log ref) of chosen and rejected.

    h = (pi_c - ref_c) - (pi_r - ref_r) over summed completion log-probs (IPO: per-token means):
    sigmoid  -(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h)    (Rafailov et al.; cDPO smoothing e)
    ipo      (h - 1 / (2 beta))^2                                     (Azar et al.)
    hinge    max(0, 1 - beta h)                                       (SLiC)
    """
    logits = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    if loss_type == "sigmoid":
        loss = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        loss = (logits - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        loss = torch.relu(1 - beta * logits)
    else:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; choose sigmoid, ipo or hinge")
    chosen_rewards = beta * (policy_chosen - reference_chosen).detach()
    rejected_rewards = beta * (policy_rejected - reference_rejected).detach()
    return loss, chosen_rewards, rejected_rewards
