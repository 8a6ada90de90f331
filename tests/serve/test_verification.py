"""The rejection-sampling rule on synthetic distributions: emitted tokens follow the target exactly."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from llmkit.core.sampling import SamplingParams
from llmkit.serve.sequence import Sequence
from llmkit.serve.speculative.verification import verify

N = 20_000
P0 = torch.tensor([0.5, 0.3, 0.15, 0.05])
P1 = torch.tensor([0.1, 0.2, 0.3, 0.4])


class FakeTokenizer:
    eos_token_ids = (99,)

    def detokenizer(self, skip_special_tokens=True):
        class Stream:
            def push(self, token_id):
                return ""

        return Stream()


def sequences(drafts, draft_probs=None, temperature=1.0):
    params = SamplingParams(temperature=temperature, max_tokens=10)
    out = []
    for seed in range(N):
        seq = Sequence(seed, f"r{seed}", 0, [1, 2], params, seed, FakeTokenizer(), 10)
        seq.draft_token_ids = list(drafts)
        seq.draft_probs = draft_probs
        out.append(seq)
    return out


def run(rows, drafts, draft_probs=None, temperature=1.0):
    seqs = sequences(drafts, draft_probs, temperature)
    logits = torch.stack(rows).log().repeat(N, 1)
    spans = [(i * len(rows), len(rows)) for i in range(N)]
    return verify(logits, seqs, spans)


def assert_follows(observed: collections.Counter, expected: dict, total: int):
    keys = list(expected)
    assert set(observed) <= set(keys), f"impossible outcome drawn: {set(observed) - set(keys)}"
    f_obs = np.array([observed[k] for k in keys], dtype=float)
    f_exp = np.array([expected[k] for k in keys], dtype=float)
    f_exp *= total / f_exp.sum()
    assert chisquare(f_obs, f_exp).pvalue > 1e-3


@pytest.mark.parametrize("draft", [0, 1, 3])
def test_deterministic_draft_gives_the_target_distribution(draft):
    verdicts = run([P0, P1], [draft])
    first = collections.Counter(v.tokens[0] for v in verdicts)
    assert_follows(first, {t: float(P0[t]) for t in range(4)}, N)
    accepted = [v for v in verdicts if v.accepted_drafts == 1]
    assert all(v.tokens[0] == draft and len(v.tokens) == 2 for v in accepted)
    bonus = collections.Counter(v.tokens[1] for v in accepted)
    assert_follows(bonus, {t: float(P1[t]) for t in range(4)}, len(accepted))


def test_sampled_draft_gives_the_target_distribution():
    q = torch.tensor([0.1, 0.6, 0.2, 0.1])
    drafts_rng = np.random.default_rng(0)
    seqs = sequences([0])
    for seq in seqs:  # the draft token itself is drawn from q, as a draft model would
        seq.draft_token_ids = [int(drafts_rng.choice(4, p=q.numpy()))]
        seq.draft_probs = q[None].clone()
    logits = torch.stack([P0, P1]).log().repeat(N, 1)
    verdicts = verify(logits, seqs, [(2 * i, 2) for i in range(N)])
    assert_follows(collections.Counter(v.tokens[0] for v in verdicts), {t: float(P0[t]) for t in range(4)}, N)
    acceptance = sum(v.accepted_drafts for v in verdicts) / N
    assert abs(acceptance - float(torch.minimum(P0, q).sum())) < 0.02  # theory: sum_x min(p, q)


def test_two_drafts_joint_distribution():
    verdicts = run([P0, P1, P0], [0, 3])
    pairs = collections.Counter(tuple(v.tokens[:2]) for v in verdicts if v.tokens[0] == 0)
    expected = {(0, t): float(P1[t]) for t in range(4)}
    assert_follows(pairs, expected, sum(pairs.values()))


def test_greedy_accepts_exactly_the_argmax_prefix():
    rows = [P0, P1, P0]
    (accept_all,) = verify(torch.stack(rows).log(), sequences([0, 3], temperature=0)[:1], [(0, 3)])
    assert accept_all.tokens == [0, 3, 0] and accept_all.accepted_drafts == 2
    (stop_second,) = verify(torch.stack(rows).log(), sequences([0, 2], temperature=0)[:1], [(0, 3)])
    assert stop_second.tokens == [0, 3] and stop_second.accepted_drafts == 1
