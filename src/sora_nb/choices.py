"""What a form may offer for the settings in force: the models, each model's sizes and lengths, and which
open-model keywords (negative prompt, steps, guidance) the backend takes. ``sora_nb.playground()`` reads it, so
an impossible combination is never on offer.

The tables are the ones the backend checks against: the local server's (``sora_nb.server.params``) and each
profile's (``providers.Provider``). An engine's served models replace the model list when they are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sora_nb.config import Settings, settings
from sora_nb.providers import get_provider

EXTRAS = ("negative_prompt", "steps", "guidance")  # the open-model keywords a form shows, where they are taken
# Frame sizes and lengths offered for an engine's own models: its served models say nothing about them, so
# these are the shapes the diffusers video pipelines render (Wan, LTX) at their usual lengths.
ENGINE_SIZES = ("832x480", "480x832", "1280x720", "720x1280")
ENGINE_SECONDS = (2, 4, 5, 8)


@dataclass(frozen=True)
class Choices:
    """The models on offer, each one's sizes and lengths (the first is the default), and the extras taken."""

    models: tuple[str, ...]
    sizes: dict[str, tuple[str, ...]]
    seconds: dict[str, tuple[int, ...]]
    extras: tuple[str, ...] = ()

    def state(self) -> dict[str, Any]:
        """As JSON for a widget's front end."""
        return {
            "models": list(self.models),
            "sizes": {m: list(v) for m, v in self.sizes.items()},
            "seconds": {m: list(v) for m, v in self.seconds.items()},
            "extras": list(self.extras),
        }

    def allows(self, model: str, size: str | None = None, seconds: int | None = None) -> bool:
        """Whether ``model`` (at ``size`` and ``seconds``, when given) is on offer."""
        return (
            model in self.models
            and (size is None or size in self.sizes[model])
            and (seconds is None or seconds in self.seconds[model])
        )


def choices(current: Settings | None = None, *, served: Sequence[str] | None = None) -> Choices:
    """The choices for ``current`` settings (those in force by default).

    ``served``: the models an engine serves (its ``GET /v1/models``), when known; they are then the only models
    on offer; by default, those the backend's detection found (``engine.resolve_backend``).
    """
    from sora_nb.server.params import MODEL_SIZES, RESELLER_MODELS, RESELLER_SECONDS, SECONDS

    current = current or settings()
    name = "openai"
    if not current.local:
        from sora_nb.engine import resolve_backend  # detection is asked once per base URL and remembered

        backend = resolve_backend(current)
        name, served = backend.provider, served if served is not None else backend.models
    provider = get_provider(name)
    # Only a self-hosted engine runs an open model; the Sora dialects (the embedded local server's included)
    # take none of its keywords, whatever the profile's default spelling table says.
    taken = provider.spelling if provider.engine and not current.local else {}
    extras = tuple(name for name in EXTRAS if name in taken)
    if served:
        models = tuple(dict.fromkeys(served))
        sizes = {m: MODEL_SIZES.get(m, ENGINE_SIZES) for m in models}
        lengths: dict[str, tuple[int, ...]] = {m: SECONDS if m in MODEL_SIZES else ENGINE_SECONDS for m in models}
        return Choices(models, sizes, lengths, extras)
    table = {**MODEL_SIZES, **RESELLER_MODELS} if provider.fields == "json-fields" else dict(MODEL_SIZES)
    seconds = tuple(sorted({*SECONDS, *RESELLER_SECONDS})) if provider.fields == "json-fields" else SECONDS
    if current.model and current.model not in table:  # a gateway's own model name, configured by the user
        table = {current.model: table["sora-2-pro"], **table}
    models = tuple(table)
    if current.model in table:  # the configured model first: it is the form's default
        models = (current.model, *(m for m in models if m != current.model))
    return Choices(models, {m: table[m] for m in models}, {m: seconds for m in models}, extras)
