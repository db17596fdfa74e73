"""The sampling kernel against a reference implementation of the same definition, on fixed logits.

Definition: softmax(logits / temperature) over the whole vocabulary; top_k keeps the k most probable,
top_p the shortest most-probable prefix reaching p of what is left, min_p the tokens at least min_p
times as probable as the best; order is probability descending, token id ascending on ties.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.runtime.nucleus import NucleusKernel


def reference(logits: np.ndarray, temperature: float, top_k: int, top_p: float, min_p: float):
    weights = np.exp((logits.astype(np.float64) - logits.max()) / temperature)
    order = np.lexsort((np.arange(logits.size), -weights))
    ranked = weights[order]
    keep = top_k if top_k else logits.size
    if top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(ranked[:keep]), top_p * ranked[:keep].sum()) + 1)
    if min_p > 0.0:
        keep = min(keep, int((ranked[:keep] >= min_p).sum()))
    kept = order[:keep]
    return kept, weights[kept] / weights[kept].sum()


def peaked(n: int) -> np.ndarray:
    logits = np.linspace(-8, 0, n, dtype=np.float32)
    logits[n // 3] = 12.0
    return logits


def ties(n: int) -> np.ndarray:
    logits = np.zeros(n, dtype=np.float32)
    logits[[5, 17, 900 % n, n - 1]] = 4.0  # four equal leaders: order by id decides the cut
    return logits


def realistic(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    logits = rng.standard_normal(n).astype(np.float32) * 2.5
    logits[rng.choice(n, 20, replace=False)] += rng.uniform(6, 10, 20).astype(np.float32)
    return logits


CASES = {
    "flat": lambda n: np.zeros(n, dtype=np.float32),
    "peaked": peaked,
    "ties": ties,
    "realistic": realistic,
}
SETTINGS = [(0.7, 0, 0.95, 0.0), (1.0, 0, 0.5, 0.0), (1.0, 40, 0.9, 0.0), (0.7, 0, 1.0, 0.05),
            (1.3, 5, 1.0, 0.0), (0.7, 0, 0.9, 0.1), (1.0, 3, 0.99, 0.0)]


@pytest.mark.parametrize("n_vocab", [1000, 262_144])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("setting", SETTINGS)
def test_kept_set_and_probabilities_match_the_reference(n_vocab, case, setting):
    logits = CASES[case](n_vocab)
    ids, probabilities = NucleusKernel(n_vocab).kept_set(logits, *setting)
    expected_ids, expected_probabilities = reference(logits, *setting)
    assert ids.tolist() == expected_ids.tolist()
    np.testing.assert_allclose(probabilities, expected_probabilities, rtol=1e-5, atol=1e-9)


def test_ties_at_the_cut_are_broken_by_token_id():
    # four equal leaders (weight 1) hold 4 / 22.2 of the mass; a tenth of it (2.22) needs three of them
    ids, probabilities = NucleusKernel(1000).kept_set(ties(1000), 1.0, 0, 0.1, 0.0)
    assert ids.tolist() == [5, 17, 900]
    np.testing.assert_allclose(probabilities, [1 / 3] * 3)


def test_draws_follow_the_kept_distribution():
    logits = realistic(1000)
    kernel = NucleusKernel(1000)
    ids, probabilities = kernel.kept_set(logits, 1.0, 0, 0.95, 0.0)
    rng = np.random.default_rng(0)
    draws = [kernel.sample(logits, 1.0, 0, 0.95, 0.0, int(bits)) for bits in rng.integers(0, 2**63, 20_000)]
    assert set(draws) <= set(ids.tolist())
    counts = np.array([draws.count(int(token)) for token in ids])
    expected = probabilities * len(draws)
    common = expected > 50
    assert np.abs(counts[common] - expected[common]).max() < 5 * np.sqrt(expected[common]).max()


def test_plain_temperature_sampling_covers_the_whole_vocabulary():
    logits = np.zeros(262_144, dtype=np.float32)
    logits[:4] = 3.0  # a heavy head and a flat tail of 262,140 tokens holding most of the mass
    kernel = NucleusKernel(logits.size)
    rng = np.random.default_rng(1)
    draws = np.array([kernel.sample(logits, 1.0, 0, 1.0, 0.0, int(bits)) for bits in rng.integers(0, 2**63, 4000)])
    head_share = (draws < 4).mean()
    expected = 4 * np.exp(3.0) / (4 * np.exp(3.0) + 262_140)
    assert abs(head_share - expected) < 0.01
    assert len(set(draws[draws >= 4].tolist())) > 3000  # the tail is drawn, not ignored


def test_same_random_bits_give_the_same_token_and_greedy_takes_the_first_maximum():
    logits = realistic(262_144)
    kernel = NucleusKernel(logits.size)
    assert kernel.sample(logits, 0.7, 0, 0.95, 0.0, 123) == kernel.sample(logits, 0.7, 0, 0.95, 0.0, 123)
    assert NucleusKernel(1000).sample(ties(1000), 0.0, 0, 1.0, 0.0, 0) == 5


def test_banned_tokens_are_never_drawn_and_all_banned_is_reported():
    logits = realistic(1000)
    logits[logits.argmax()] = -np.inf
    kernel = NucleusKernel(1000)
    assert int(np.argmax(logits)) in kernel.kept_set(logits, 0.7, 0, 0.95, 0.0)[0].tolist()
    banned = int(np.argmin(logits))
    assert all(kernel.sample(logits, 2.0, 0, 1.0, 0.0, bits) != banned for bits in range(300))
    assert kernel.sample(np.full(1000, -np.inf, dtype=np.float32), 0.7, 0, 0.95, 0.0, 1) == -1


def test_log_normalizer_is_logsumexp():
    logits = realistic(262_144)
    expected = np.log(np.exp(logits.astype(np.float64)).sum())
    assert NucleusKernel(logits.size).log_normalizer(logits) == pytest.approx(expected, rel=1e-6)


def test_logits_of_another_vocabulary_size_are_refused():
    with pytest.raises(ValueError):
        NucleusKernel(262_144).sample(np.zeros(1000, dtype=np.float32), 0.7, 0, 0.95, 0.0, 1)
