"""Usage as Azure reports it, and the cost every job carries from the shipped price table."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from imagegen.domain.catalog import CATALOG
from imagegen.domain.pricing import Cost, PriceTableError, Usage, shipped_prices

PRICES_FILE = Path(__file__).resolve().parents[2] / "imagegen" / "data" / "prices.json"


def test_every_served_model_has_a_price_with_its_source_and_date() -> None:
    document = json.loads(PRICES_FILE.read_text())
    served = {key for key, entry in CATALOG.items() if entry.rules is not None}
    assert set(document["models"]) == served
    for model, entry in document["models"].items():
        assert entry["source"].strip(), model
        date.fromisoformat(entry["as_of"])
    assert document["currency"] == "USD"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {
                "input_tokens": 50,
                "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
                "output_tokens": 7,
            },
            Usage(40, 10, 7),
        ),
        ({"input_tokens": 50, "output_tokens": 7}, Usage(50, 0, 7)),  # no details: all text
        (
            {"input_tokens": 50, "input_tokens_details": {"image_tokens": 20}, "output_tokens": 7},
            Usage(30, 20, 7),
        ),
        (None, None),
        ("usage", None),
        ({"input_tokens": -1, "output_tokens": 7}, None),
        ({"input_tokens": 5, "output_tokens": True}, None),
        ({"input_tokens": 5}, None),
    ],
)
def test_usage_reads_what_azure_answers_and_nothing_else(block: Any, expected: Usage | None) -> None:
    assert Usage.from_answer(block) == expected


def test_usage_round_trips_in_azures_shape() -> None:
    usage = Usage(text_tokens=12, image_tokens=300, output_tokens=4160)
    assert usage.to_json() == {
        "input_tokens": 312,
        "input_tokens_details": {"text_tokens": 12, "image_tokens": 300},
        "output_tokens": 4160,
        "total_tokens": 4472,
    }
    assert Usage.from_answer(usage.to_json()) == usage


def test_gpt_image_2_is_priced_by_its_tokens() -> None:
    # 1,000 text tokens at $5/M + 0 image tokens + 4,160 output tokens at $30/M.
    cost = shipped_prices().cost("gpt-image-2", Usage(1000, 0, 4160), images=1)
    assert cost == Cost(Decimal("0.129800"), "USD", "2026-04-29")
    assert cost.to_json() == {"amount": 0.1298, "currency": "USD", "prices_as_of": "2026-04-29"}


def test_more_output_costs_more() -> None:
    low = shipped_prices().cost("gpt-image-1-mini", Usage(10, 0, 272), images=1)
    high = shipped_prices().cost("gpt-image-1-mini", Usage(10, 0, 6240), images=1)
    assert low is not None and high is not None and low.amount < high.amount


def test_flux_counts_no_tokens_and_is_priced_per_image() -> None:
    cost = shipped_prices().cost("FLUX-1.1-pro", None, images=1)
    assert cost is not None and cost.to_json() == {
        "amount": 0.04,
        "currency": "USD",
        "prices_as_of": "2026-03-23",
    }


def test_a_token_priced_model_without_usage_has_no_cost_rather_than_a_guess() -> None:
    assert shipped_prices().cost("gpt-image-2", None, images=1) is None


def test_an_unknown_model_has_no_cost() -> None:
    assert shipped_prices().cost("midjourney", Usage(1, 0, 1), images=1) is None


def test_an_override_replaces_one_models_entry_and_keeps_the_others() -> None:
    table = shipped_prices().overridden(
        '{"gpt-image-2": {"text_input_per_million": 4, "image_input_per_million": 6, "output_per_million": 20,'
        ' "currency": "EUR", "as_of": "2026-11-30"}}'
    )
    cost = table.cost("gpt-image-2", Usage(1_000_000, 0, 1_000_000), images=1)
    assert cost == Cost(Decimal("24.000000"), "EUR", "2026-11-30")
    assert table.cost("FLUX-1.1-pro", None, images=2) == shipped_prices().cost("FLUX-1.1-pro", None, images=2)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "not valid JSON"),
        ("{}", "JSON object of models"),
        ('{"gpt-image-2": 3}', "object of prices"),
        ('{"gpt-image-2": {"per_image": "0.2"}}', "non-negative number"),
        ('{"gpt-image-2": {"per_image": 0.2, "as_of": "yesterday"}}', "as_of"),
        ('{"gpt-image-2": {"per_image": 0.2, "currency": "$"}}', "currency"),
        ('{"gpt-image-2": {"per_image": 0.2, "discount": 1}}', "discount"),
    ],
)
def test_a_bad_override_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(PriceTableError, match=says):
        shipped_prices().overridden(text)


def test_a_stored_cost_reads_back_and_a_damaged_one_is_dropped() -> None:
    cost = Cost(Decimal("0.1298"), "USD", "2026-04-29")
    assert Cost.from_json(cost.to_json()) == cost
    assert Cost.from_json({"amount": "lots"}) is None
    assert Cost.from_json(None) is None
