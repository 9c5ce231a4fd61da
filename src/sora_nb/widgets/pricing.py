"""What the playground's buttons would cost, and why a button is disabled: the estimate for the form, the
remaining budget (the session's own ``budget_usd`` and ``configure(budget_usd=...)``, whichever is tighter).

Pure functions of their arguments, so the widget recomputes them on every change of the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sora_nb.costs import Estimate


@dataclass(frozen=True)
class Limit:
    """A budget: ``limit`` dollars of which ``spent`` are spent; ``whose`` names it in messages."""

    limit: float
    spent: float
    whose: str

    @property
    def left(self) -> float:
        """Dollars left (never below 0)."""
        return max(0.0, round(self.limit - self.spent, 4))


def tightest(limits: list[Limit]) -> Limit | None:
    """The budget with the least left, or None when no budget is set."""
    return min(limits, key=lambda b: b.left) if limits else None


def blocked_reason(cost: Estimate, count: int, budget: Limit | None, *, prompt: str, what: str) -> str:
    """Why ``what`` (``count`` takes at ``cost`` each) may not be pressed now; "" when it may."""
    if not prompt.strip():
        return "Type a prompt first."
    if budget is None or cost.local:
        return ""
    if cost.usd is None:
        return (
            f"The price of {cost.model!r} is unknown, so the {budget.whose} cannot be checked: give it with "
            "sora_nb.configure(prices={...})."
        )
    total = round(cost.usd * count, 4)
    if total > budget.left + 1e-9:
        return (
            f"{what} would cost ${total:.2f}, and only ${budget.left:.2f} of the {budget.whose} "
            f"(${budget.limit:.2f}) is left."
        )
    return ""


def cost_state(cost: Estimate, count: int, budget: Limit | None, *, reattach: bool) -> dict[str, Any]:
    """The cost line's numbers for the front end: one take, the variations, what is left (None: no budget)."""
    one = 0.0 if reattach else cost.usd
    return {
        "take_usd": one,
        "variations_usd": None if cost.usd is None else round(cost.usd * count, 4),
        "count": count,
        "left_usd": budget.left if budget else None,
        "limit_usd": budget.limit if budget else None,
        "local": cost.local,
        "reattach": reattach,
        "model": cost.model,
        "seconds": cost.seconds,
    }
