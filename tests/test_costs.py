"""Prices, estimates and the persisted budget: a job that would cross the budget sends nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import sora_nb
from sora_nb.costs import Budget, estimate_request, price_per_second
from sora_nb.server import ServerHandle

Configured = Callable[..., ServerHandle]


@pytest.mark.parametrize(
    ("model", "size", "price"),
    [
        ("sora-2", "1280x720", 0.10),
        ("sora-2", None, 0.10),
        ("sora-2-2025-12-08", "720x1280", 0.10),
        ("sora-2-pro", "1280x720", 0.30),
        ("sora-2-pro", "1792x1024", 0.50),
        ("sora-2-pro", "1080x1920", 0.70),
        ("sora-2-pro-2025-10-06", "1920x1080", 0.70),
        ("sora-2-pro", None, 0.30),
        ("veo-unknown", "1280x720", None),
    ],
)
def test_official_prices(model: str, size: str | None, price: float | None) -> None:
    assert price_per_second(model, size) == price


def test_user_prices_come_first_and_local_is_free() -> None:
    prices = {"kling-1": 0.07, "sora-2": {"*": 0.08, "1280x720": 0.09}}
    assert price_per_second("kling-1", None, prices) == 0.07
    assert price_per_second("sora-2", "1280x720", prices) == 0.09
    assert price_per_second("sora-2", "720x1280", prices) == 0.08
    gateway = estimate_request({"model": "sora-2-pro", "size": "1792x1024", "seconds": "12"}, local=False)
    assert (gateway.usd, gateway.seconds, gateway.per_second) == (6.0, 12.0, 0.5)
    assert "$6.00" in repr(gateway)
    local = estimate_request({"model": "sora-2-pro", "seconds": "20"}, local=True)
    assert local.usd == 0.0 and "local preview" in repr(local)
    unknown = estimate_request({"model": "mystery"}, local=False)
    assert unknown.usd is None and "prices" in repr(unknown)


def test_budget_refuses_before_sending_and_persists_spend(configured: Configured, tmp_path: Path) -> None:
    handle = configured()
    sora_nb.configure(budget_usd=0.25)
    refused = sora_nb.submit("too expensive for the budget", seconds=4)
    with pytest.raises(sora_nb.BudgetExceededError, match="nothing was sent") as exc:
        refused.result(timeout=30)
    assert "$0.40" in str(exc.value) and handle.app.store.jobs() == []
    sora_nb.configure(budget_usd=0.85)
    first = sora_nb.submit("first paid clip", seconds=4)
    second = sora_nb.submit("second paid clip", seconds=4)
    first.result(timeout=60)
    second.result(timeout=60)
    assert (first.cost, second.cost) == (0.4, 0.4)
    third = sora_nb.submit("third paid clip", seconds=4)
    with pytest.raises(sora_nb.BudgetExceededError):
        third.result(timeout=30)
    assert len(handle.app.store.jobs()) == 2
    assert sora_nb.spent() == pytest.approx(0.8)
    spend = json.loads((tmp_path / "cache" / "spend.json").read_text())
    assert set(spend["jobs"]) == {first.id, second.id}
    again = sora_nb.submit("first paid clip", seconds=4)  # a cache hit costs nothing, even over budget
    assert again.result(timeout=10) == first.path and again.cost == 0.0


def test_unknown_price_with_a_budget_is_refused(configured: Configured) -> None:
    handle = configured()
    sora_nb.configure(budget_usd=100.0, model="sora-2-pro")
    sora_nb.configure(prices={"sora-2-pro": {"1280x720": 0.3}})
    job = sora_nb.submit("a priced pro clip", size="1280x720")
    job.result(timeout=60)
    assert job.cost == pytest.approx(1.2)
    sora_nb.configure(model="gateway-special", prices=None)
    with pytest.raises(sora_nb.BudgetExceededError, match="unknown"):
        sora_nb.submit("an unpriced clip").result(timeout=30)
    assert len(handle.app.store.jobs()) == 1


def test_failed_create_refunds(tmp_path: Path) -> None:
    budget = Budget(tmp_path)
    cost = estimate_request({"model": "sora-2", "seconds": "8"}, local=False)
    usd = budget.reserve(cost, limit=1.0)
    assert budget.spent == pytest.approx(0.8)
    budget.refund(usd)
    assert budget.spent == 0.0


def test_widget_shows_why_a_job_was_refused(configured: Configured) -> None:
    configured()
    sora_nb.configure(budget_usd=0.01)
    widget = sora_nb.generate("over budget")
    with pytest.raises(sora_nb.BudgetExceededError):
        widget.result(timeout=30)
    assert widget.status == "failed" and widget.error_code == "BudgetExceededError"
    # the advice once: the message says what to do (raise it with budget_usd=...), so there is no hint beside it
    assert "budget" in widget.error_message and "budget_usd" in widget.error_message and widget.error_hint == ""


def test_estimate_a_whole_sweep(configured: Configured) -> None:
    configured()
    sweep = sora_nb.estimate("a {animal}", animal=["fox", "owl"], model=["sora-2", "sora-2-pro"], seconds=[4, 8])
    assert sweep.jobs == 8 and sweep.seconds == 48 and sweep.usd == pytest.approx(2.4 + 7.2)
    assert "8 jobs" in repr(sweep)
    sora_nb.configure(base_url=None)
    assert sora_nb.estimate(["a", "b"], seconds=8).usd == 0.0  # the local preview server is free


def test_a_self_hosted_engine_costs_nothing_unless_priced(configured: Configured) -> None:
    handle = configured(dialect="sglang")  # its served model has no price in the table
    sora_nb.configure(budget_usd=1.0)
    job = sora_nb.submit("a free clip on my own GPU", size="832x480", seconds=2)
    job.result(timeout=60)
    assert job.cost == 0.0 and len(handle.app.store.jobs()) == 1
    served = job.request["model"]
    sora_nb.configure(prices={served: 1.0})  # priced by the user: $1/s, so a 2 s clip crosses the budget
    with pytest.raises(sora_nb.BudgetExceededError):
        sora_nb.submit("a priced clip on my own GPU", size="832x480", seconds=2).result(timeout=30)
    assert len(handle.app.store.jobs()) == 1


def test_estimates_and_sweeps_on_a_self_hosted_engine_say_free(configured: Configured) -> None:
    configured(dialect="sglang")  # detected; its served model has no price
    estimate = sora_nb.estimate("a lantern", seconds=[2, 4])
    assert estimate.usd == 0.0 and "self-hosted engine" in repr(estimate)
    grid = sora_nb.sweep("a lantern at {when}", when=["dusk", "dawn"], seconds=2)
    assert grid.estimated_usd == 0.0
    grid.cancel_all()
    sora_nb.configure(budget_usd=0.5)
    pg = sora_nb.playground(session="own-gpu")  # the form prices as its jobs will be: free, Generate enabled
    assert pg.cost["take_usd"] == 0.0 and pg.cost["variations_usd"] == 0.0
