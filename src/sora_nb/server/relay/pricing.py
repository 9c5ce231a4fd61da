"""What a create costs on the relay: sora_nb's price table, and a teacher's prices for gateway models.

The relay prices a request the way the client's ``estimate()`` does (:func:`sora_nb.costs.estimate_request`);
``--prices FILE`` is a JSON object in the form of ``configure(prices=...)``: ``{model: dollars per second}`` or
``{model: {size: dollars per second, "*": default}}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sora_nb.costs import Prices, estimate_request


def load_prices(path: Path | None) -> dict[str, Any]:
    """The prices in ``path`` (none without one); ValueError saying what is wrong with the file."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--prices {str(path)!r} is not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--prices {str(path)!r} must hold a JSON object: {{model: dollars per second}}")
    for model, entry in data.items():
        rates = entry.values() if isinstance(entry, dict) else [entry]
        if not all(_rate(rate) for rate in rates):
            raise ValueError(
                f"--prices {str(path)!r}: the price of {model!r} must be dollars per second >= 0, "
                'or {"WIDTHxHEIGHT": dollars, "*": dollars}'
            )
    return data


def _rate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def price(request: Mapping[str, Any], prices: Prices) -> float | None:
    """Dollars for a create of ``request`` (model, size, seconds); None when the model has no price."""
    return estimate_request(request, local=False, prices=prices).usd


def known(model: str, prices: Prices) -> bool:
    """Whether the teacher's prices name ``model`` (then the relay takes it with any size the upstream takes)."""
    return model in prices
