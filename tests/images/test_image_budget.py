"""detail -> Gemma 4 token budget, and fitting an image to it (no model needed)."""

from __future__ import annotations

import random

import pytest

from edge.errors import InvalidRequestError
from edge.runtime.images import (GEMMA4_TOKEN_BUDGETS, ImagePolicy, fit_size, load_image, token_budget,
                                 tokens_for_size)

from .conftest import PARAM, data_url, encode, solid


@pytest.mark.parametrize("detail, budget", [("low", 70), ("auto", 280), (None, 280), ("high", 1120)])
def test_detail_maps_to_a_gemma4_budget(detail, budget):
    assert token_budget(detail, ImagePolicy(), "d") == budget


def test_operator_can_move_auto_and_high():
    small_device = ImagePolicy(auto_tokens=140, high_tokens=560)
    assert [token_budget(d, small_device, "d") for d in ("low", "auto", "high")] == [70, 140, 560]
    # auto never exceeds high
    assert token_budget("auto", ImagePolicy(auto_tokens=560, high_tokens=280), "d") == 280


@pytest.mark.parametrize("field", ["auto_tokens", "high_tokens"])
def test_policy_budgets_must_be_gemma4_budgets(field):
    with pytest.raises(ValueError, match=field):
        ImagePolicy(**{field: 300})


def test_bad_detail_is_an_invalid_request():
    with pytest.raises(InvalidRequestError) as caught:
        token_budget("medium", ImagePolicy(), "messages[0].content[0].image_url.detail")
    assert caught.value.param == "messages[0].content[0].image_url.detail"


# The documented token counts (README/report): a 4:3 and a square picture at each detail level.
@pytest.mark.parametrize("size, budget, fitted, tokens", [
    ((640, 480), 70, (432, 336), 63),
    ((640, 480), 280, (912, 672), 266),
    ((640, 480), 1120, (1824, 1344), 1064),
    ((512, 512), 70, (384, 384), 64),
    ((512, 512), 280, (768, 768), 256),
    ((512, 512), 1120, (1584, 1584), 1089),
    ((4032, 3024), 280, (912, 672), 266),  # a phone photo is scaled down ...
    ((32, 32), 280, (768, 768), 256),  # ... an icon up, as the reference processor does
    ((10_000, 10), 70, (3360, 48), 70),  # a hairline keeps one row of tiles
    ((10, 200), 70, (48, 1776), 37),
])
def test_fit_size(size, budget, fitted, tokens):
    assert fit_size(*size, budget) == fitted
    assert tokens_for_size(*fitted) == tokens


def test_fitted_images_never_exceed_their_budget_and_use_most_of_it():
    rng = random.Random(7)
    for _ in range(2000):
        width, height = rng.randint(1, 8000), rng.randint(1, 8000)
        for budget in GEMMA4_TOKEN_BUDGETS:
            fitted = fit_size(width, height, budget)
            assert fitted[0] % 48 == 0 and fitted[1] % 48 == 0
            tokens = tokens_for_size(*fitted)
            assert 1 <= tokens <= budget
            if 1 / 4 <= width / height <= 4:  # ordinary aspect ratios lose little to tile rounding
                assert tokens >= 0.6 * budget, (width, height, budget, tokens)


def test_loaded_image_carries_its_budget_and_token_count(policy):
    loaded = load_image(data_url(encode(solid((1, 2, 3), (640, 480)), "PNG")), policy, PARAM, "high")
    assert (loaded.detail, loaded.token_budget, loaded.n_tokens) == ("high", 1120, 1064)
    assert (loaded.width, loaded.height, loaded.original_size) == (1824, 1344, (640, 480))
    assert loaded.to_png().startswith(b"\x89PNG")
