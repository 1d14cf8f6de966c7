"""What a job used and what it cost: Azure's token counts, and a price table shipped as data.

The table is `imagegen/data/prices.json` (sources and dates inside; docs/models.md says why they are
not Microsoft's). IMAGE_PRICES overrides it per model with the same shape, for negotiated prices or
another currency. gpt-image models are priced by tokens (text input, image input, output); a model
without usage (FLUX) by the image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

MILLION = Decimal(1_000_000)
COST_DECIMALS = Decimal("0.000001")


class PriceTableError(ValueError):
    """A price table (the shipped one or IMAGE_PRICES) that is not well formed; says what is wrong."""


@dataclass(frozen=True)
class Usage:
    """Azure's token counts for one generation (the `usage` block of gpt-image answers)."""

    text_tokens: int
    image_tokens: int
    output_tokens: int

    @property
    def input_tokens(self) -> int:
        return self.text_tokens + self.image_tokens

    @classmethod
    def from_answer(cls, block: object) -> Usage | None:
        """Azure's `usage` block, or None when it is missing or not counts (never an error: it is a
        report, and the images are what was asked for)."""
        if not isinstance(block, dict):
            return None
        details = block.get("input_tokens_details")
        details = details if isinstance(details, dict) else {}
        output = _count(block.get("output_tokens"))
        total_input = _count(block.get("input_tokens"))
        if output is None or total_input is None:
            return None
        image = _count(details.get("image_tokens")) or 0
        text = _count(details.get("text_tokens"))
        if text is None:
            text = max(0, total_input - image)
        return cls(text_tokens=text, image_tokens=image, output_tokens=output)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.text_tokens + other.text_tokens,
            self.image_tokens + other.image_tokens,
            self.output_tokens + other.output_tokens,
        )

    def to_json(self) -> dict[str, Any]:
        """In Azure's own shape, so a caller reads it as it reads Azure's."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"text_tokens": self.text_tokens, "image_tokens": self.image_tokens},
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True)
class Cost:
    amount: Decimal
    currency: str
    prices_as_of: str

    def to_json(self) -> dict[str, Any]:
        return {"amount": float(self.amount), "currency": self.currency, "prices_as_of": self.prices_as_of}

    @classmethod
    def from_json(cls, value: object) -> Cost | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(Decimal(str(value["amount"])), str(value["currency"]), str(value["prices_as_of"]))
        except (KeyError, ArithmeticError, ValueError):
            return None


@dataclass(frozen=True)
class ModelPrice:
    currency: str
    as_of: str
    text_input_per_million: Decimal | None = None
    image_input_per_million: Decimal | None = None
    output_per_million: Decimal | None = None
    per_image: Decimal | None = None

    def cost(self, usage: Usage | None, images: int) -> Cost | None:
        """Priced by tokens when Azure counted them and the table has token prices, else by image."""
        token_prices = (self.text_input_per_million, self.image_input_per_million, self.output_per_million)
        if usage is not None and all(price is not None for price in token_prices):
            text, image, output = (price or Decimal(0) for price in token_prices)
            amount = (
                usage.text_tokens * text + usage.image_tokens * image + usage.output_tokens * output
            ) / MILLION
        elif self.per_image is not None:
            amount = self.per_image * images
        else:
            return None  # token prices only, and no counts: no honest figure
        return Cost(amount.quantize(COST_DECIMALS), self.currency, self.as_of)


_PRICE_FIELDS = ("text_input_per_million", "image_input_per_million", "output_per_million", "per_image")


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, ModelPrice]

    def cost(self, model: str, usage: Usage | None, images: int) -> Cost | None:
        price = self.prices.get(model.lower())
        return price.cost(usage, images) if price is not None else None

    def overridden(self, text: str) -> PriceTable:
        """This table with IMAGE_PRICES applied: `{"<model>": {<prices>, "currency"?, "as_of"?}}`."""
        try:
            document = json.loads(text)
        except ValueError:
            raise PriceTableError("is not valid JSON") from None
        if not isinstance(document, dict) or not document:
            raise PriceTableError('must be a JSON object of models, e.g. {"gpt-image-2": {"per_image": 0.2}}')
        prices = dict(self.prices)
        for model, entry in document.items():
            base = prices.get(model.lower())
            prices[model.lower()] = _model_price(
                model,
                entry,
                currency=base.currency if base else "USD",
                as_of=date.today().isoformat(),
            )
        return PriceTable(prices)


def _model_price(model: str, entry: object, *, currency: str, as_of: str) -> ModelPrice:
    if not isinstance(entry, dict):
        raise PriceTableError(f"{model}: must be an object of prices")
    unknown = set(entry) - {*_PRICE_FIELDS, "currency", "as_of", "source"}
    if unknown:
        raise PriceTableError(f"{model}: unknown field {sorted(unknown)[0]!r}")
    values: dict[str, Decimal | None] = {}
    for name in _PRICE_FIELDS:
        value = entry.get(name)
        if value is None:
            values[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise PriceTableError(f"{model}: {name} must be a non-negative number")
        values[name] = Decimal(str(value))
    if all(value is None for value in values.values()):
        raise PriceTableError(f"{model}: give per_image or the three token prices")
    currency_value = entry.get("currency", currency)
    if not isinstance(currency_value, str) or len(currency_value) != 3 or not currency_value.isalpha():
        raise PriceTableError(f"{model}: currency must be a three-letter code such as USD or EUR")
    as_of_value = entry.get("as_of", as_of)
    try:
        date.fromisoformat(str(as_of_value))
    except ValueError:
        raise PriceTableError(f"{model}: as_of must be a date (YYYY-MM-DD)") from None
    return ModelPrice(currency=currency_value.upper(), as_of=str(as_of_value), **values)


@cache
def shipped_prices() -> PriceTable:
    """The table shipped with the app (read once)."""
    document = json.loads(resources.files("imagegen").joinpath("data/prices.json").read_text("utf-8"))
    currency, as_of = document["currency"], document["as_of"]
    return PriceTable(
        {
            model.lower(): _model_price(model, entry, currency=currency, as_of=as_of)
            for model, entry in document["models"].items()
        }
    )
