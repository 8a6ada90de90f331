"""Our losses against TRL's on the very same batch (same weights, same token ids and masks).

Runs only where `trl` is importable (`pip install llmkit-train[trl]`; the nox session installs it).
"""

from __future__ import annotations

import warnings

import pytest
import torch

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from llmkit.core import load_pretrained  # noqa: E402
from llmkit.core.testing import write_tiny_model  # noqa: E402
from llmkit.train.data import RecordEncoder, TokenBatch  # noqa: E402
from llmkit.train.losses import aggregate_token_loss, bradley_terry_loss, dpo_loss, grpo_token_loss  # noqa: E402
from llmkit.train.methods.reward import score_sequences  # noqa: E402
from llmkit.train.modeling import ScalarHead, hidden_states, target_logprobs  # noqa: E402
from llmkit.train.modeling.forward import sequence_logprobs  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("trl")
    policy, reference = write_tiny_model(root / "policy", seed=1), write_tiny_model(root / "reference", seed=0)
    return policy, reference, transformers.AutoTokenizer.from_pretrained(policy)


def common(tmp_path, **extra):
    config = {"output_dir": str(tmp_path), "report_to": "none", "use_cpu": True, "per_device_train_batch_size": 4}
    return {**config, "bf16": False, **extra}  # TRL defaults to bf16 autocast where the CPU supports it


def token_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor) -> TokenBatch:
    b, t = input_ids.shape
    return TokenBatch(
        input_ids,
        torch.arange(t).expand(b, t).clone(),
        torch.zeros(b, t, dtype=torch.long),
        attention_mask.bool(),
        targets.bool() & attention_mask.bool(),
    )


def test_sft_loss_and_completion_tokens_match_trl(models, tmp_path):
    policy_dir, _, tokenizer = models
    rows = [{"prompt": f"Question {i}:", "completion": f" answer {i} is here"} for i in range(4)]
    trainer = trl.SFTTrainer(
        model=transformers.AutoModelForCausalLM.from_pretrained(policy_dir),
        args=trl.SFTConfig(**common(tmp_path), max_length=64),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    theirs = float(trainer.compute_loss(trainer.model, dict(batch)))
    ours_model = load_pretrained(policy_dir)
    tokens = token_batch(batch["input_ids"], batch["attention_mask"], batch["labels"] != -100)
    with torch.no_grad():
        logprobs = target_logprobs(ours_model.model, hidden_states(ours_model.model, tokens), tokens)
    assert float(-logprobs.sum() / tokens.num_targets) == pytest.approx(theirs, rel=1e-5)
    # the same prompt/completion semantics: separate tokenization, EOS appended, loss on the completion only
    encoder = RecordEncoder(ours_model.tokenizer, ours_model.chat_template)
    ours_rows = set()
    for row in rows:
        pair = encoder.encode_completion(row["prompt"], row["completion"])
        ours_rows.add(
            (tuple(pair.prompt + pair.completion), (False,) * len(pair.prompt) + (True,) * len(pair.completion))
        )
    theirs_rows = set()
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        n = int(mask.sum())
        theirs_rows.add((tuple(ids[:n].tolist()), tuple((labels[:n] != -100).tolist())))
    assert ours_rows == theirs_rows


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_dpo_loss_matches_trl(models, tmp_path, loss_type):
    policy_dir, reference_dir, tokenizer = models
    rows = [{"prompt": f"Question {i}:", "chosen": f" good {i}", "rejected": f" bad bad {i}"} for i in range(4)]
    trainer = trl.DPOTrainer(
        model=transformers.AutoModelForCausalLM.from_pretrained(policy_dir),
        ref_model=transformers.AutoModelForCausalLM.from_pretrained(reference_dir),
        args=trl.DPOConfig(**common(tmp_path), max_length=64, beta=0.3, loss_type=[loss_type]),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    theirs = float(trainer.compute_loss(trainer.model, dict(batch)))
    tokens = token_batch(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    with torch.no_grad():
        policy, counts = sequence_logprobs(load_pretrained(policy_dir).model, tokens)
        reference, _ = sequence_logprobs(load_pretrained(reference_dir).model, tokens)
    if loss_type == "ipo":
        policy, reference = policy / counts, reference / counts
    losses, _, _ = dpo_loss(*policy.chunk(2), *reference.chunk(2), beta=0.3, loss_type=loss_type)
    assert float(losses.mean()) == pytest.approx(theirs, rel=1e-5, abs=1e-6)


def test_reward_loss_matches_trl(models, tmp_path):
    policy_dir, _, tokenizer = models
    rows = [
        {"chosen": f"Question {i}: good", "rejected": f"Question {i}: bad bad", "margin": 0.5 * i} for i in range(4)
    ]
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(policy_dir, num_labels=1)
    hf.config.pad_token_id = tokenizer.pad_token_id
    trainer = trl.RewardTrainer(
        model=hf,
        args=trl.RewardConfig(**common(tmp_path), max_length=64, center_rewards_coefficient=0.01),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    theirs = float(trainer.compute_loss(trainer.model, dict(batch)))
    ours = load_pretrained(policy_dir).model
    head = ScalarHead(ours.config.hidden_size)
    with torch.no_grad():
        head.proj.weight.copy_(hf.score.weight)
        head.proj.bias.zero_()
        tokens = token_batch(batch["input_ids"], batch["attention_mask"], batch["attention_mask"])
        rewards = score_sequences(ours, head, tokens)
    chosen, rejected = rewards.chunk(2)
    loss = bradley_terry_loss(chosen, rejected, batch["margin"].float(), center_rewards_coefficient=0.0).mean()
    loss = loss + 0.01 * ((chosen + rejected) ** 2).mean()
    assert float(loss) == pytest.approx(theirs, rel=1e-5)


@pytest.mark.parametrize(
    "trl_loss, ours, beta, iterations",
    [("grpo", "sequence_mean", 0.0, 1), ("bnpo", "token_mean", 0.04, 2), ("dr_grpo", "constant", 0.1, 2)],
)
def test_grpo_loss_matches_trl(models, tmp_path, trl_loss, ours, beta, iterations):
    policy_dir, _, tokenizer = models
    completion_length = 6
    trainer = trl.GRPOTrainer(
        model=transformers.AutoModelForCausalLM.from_pretrained(policy_dir),
        reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
        args=trl.GRPOConfig(
            **common(tmp_path, per_device_train_batch_size=4),
            num_generations=2,
            max_completion_length=completion_length,
            loss_type=trl_loss,
            beta=beta,
            epsilon=0.2,
            epsilon_high=0.28,
            num_iterations=iterations,
            use_bias_correction_kl=False,  # TRL 1.x's default multiplies the k3 KL by the ratio; GRPO's paper does not
        ),
        train_dataset=datasets.Dataset.from_list([{"prompt": "Say:"}] * 4),
        processing_class=tokenizer,
    )
    generator = torch.Generator().manual_seed(5)
    prompt = torch.tensor(tokenizer("Question 7: what is it?")["input_ids"]).expand(4, -1)
    completion = torch.randint(3, 300, (4, completion_length), generator=generator)
    completion_mask = torch.ones(4, completion_length, dtype=torch.long)
    completion_mask[1, 4:] = 0
    completion_mask[3, 2:] = 0
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    tokens = token_batch(
        torch.cat([prompt, completion], 1),
        torch.cat([torch.ones_like(prompt), completion_mask], 1),
        torch.cat([torch.zeros_like(prompt), completion_mask], 1),
    )
    model = load_pretrained(policy_dir).model
    with torch.no_grad():
        current = target_logprobs(model, hidden_states(model, tokens), tokens)[:, prompt.shape[1] :]
    noise = 0.1 * torch.randn(current.shape, generator=generator)
    inputs = {
        "prompt_ids": prompt,
        "prompt_mask": torch.ones_like(prompt),
        "completion_ids": completion,
        "completion_mask": completion_mask,
        "advantages": advantages,
        "num_items_in_batch": completion_mask.sum(),
    }
    if iterations > 1:
        inputs["old_per_token_logps"] = current + noise
    if beta:
        inputs["ref_per_token_logps"] = current - noise
    theirs = float(trainer._compute_loss(trainer.model, inputs))

    with torch.no_grad():
        logprobs = target_logprobs(model, hidden_states(model, tokens), tokens)
    width = prompt.shape[1]
    pad = torch.zeros(4, width)
    old = torch.cat([pad, inputs["old_per_token_logps"]], 1) if iterations > 1 else logprobs
    reference = torch.cat([pad, inputs["ref_per_token_logps"]], 1) if beta else None
    per_token, _ = grpo_token_loss(logprobs, old, advantages, 0.2, 0.28, beta, reference)
    total, units = aggregate_token_loss(per_token, tokens.targets, ours, completion_length)
    assert float(total / units) == pytest.approx(theirs, rel=1e-5, abs=1e-6)
