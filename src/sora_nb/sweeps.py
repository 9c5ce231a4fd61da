"""Sweeps: many requests from lists of prompts and parameters, and the labels that tell them apart.

``expand("a {animal} in {place}", animal=["fox", "owl"], place=["snow", "rain"], seconds=[4, 8])`` gives the
Cartesian product (or, with ``zip=True``, the lists taken pairwise); placeholders in the prompt are filled from
the keyword lists whose names they use.
"""

from __future__ import annotations

import builtins
import itertools
import string
from collections.abc import Mapping, Sequence
from typing import Any

from sora_nb.errors import InvalidRequestError


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def placeholders(template: str) -> list[str]:
    """The ``{names}`` a prompt template uses, in order."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise InvalidRequestError(f"the prompt template {template!r} is malformed ({exc}).", param="prompt") from None


def expand(prompt: str | Sequence[str], *, zip: bool = False, **params: Any) -> list[dict[str, Any]]:
    """The requests of a sweep: one dict per job with ``prompt`` and the job parameters that are set.

    Lists are axes (Cartesian product, or pairwise with ``zip=True``); scalars are fixed for every job.
    Keyword names used as ``{placeholders}`` in a prompt fill the template and are not sent.
    """
    prompts = _as_list(prompt)
    names = {name for text in prompts for name in placeholders(str(text))}
    missing = names - set(params)
    if missing:
        raise InvalidRequestError(
            f"the prompt uses {{{', '.join(sorted(missing))}}} but no such list was given.", param="prompt"
        )
    axes: dict[str, list[Any]] = {"prompt": prompts}
    axes.update({name: _as_list(value) for name, value in params.items() if value is not None})
    if any(not values for values in axes.values()):
        raise InvalidRequestError("a sweep list is empty; give at least one value for each parameter.")
    keys = list(axes)
    if zip:
        lengths = {name: len(values) for name, values in axes.items() if len(values) > 1}
        if len(set(lengths.values())) > 1:
            raise InvalidRequestError(f"zip=True needs lists of one length; got {lengths}.")
        count = max([1, *lengths.values()])
        rows = [tuple(axes[k][i if len(axes[k]) > 1 else 0] for k in keys) for i in range(count)]
    else:
        rows = list(itertools.product(*(axes[k] for k in keys)))
    requests = []
    for row in rows:
        values = dict(builtins.zip(keys, row, strict=True))  # the builtin: ``zip`` is the argument here
        text = str(values.pop("prompt"))
        fills = {name: values.pop(name) for name in list(values) if name in names}
        request = {"prompt": text.format(**fills) if fills else text, **values}
        request["_fills"] = fills
        requests.append(request)
    return requests


def differing(requests: Sequence[Mapping[str, Any]]) -> list[str]:
    """The parameters (template fills included) whose values differ between requests, in a stable order."""
    keys: list[str] = []
    for request in requests:
        for key in [*request.get("_fills", {}), *(k for k in request if k not in ("_fills", "prompt"))]:
            if key not in keys:
                keys.append(key)
    if len({str(r.get("prompt")) for r in requests}) > 1 and not any(r.get("_fills") for r in requests):
        keys.insert(0, "prompt")
    return [k for k in keys if len({repr(_value(r, k)) for r in requests}) > 1]


def _value(request: Mapping[str, Any], key: str) -> Any:
    return request.get("_fills", {}).get(key, request.get(key))


def label(request: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``animal=fox · seconds=8`` for the differing ``keys`` of one request."""
    parts = []
    for key in keys:
        value = _value(request, key)
        if key == "image" and value is not None:
            value = getattr(value, "name", str(value)[:24])
        parts.append(f"{key}={value}" if key != "prompt" else str(value))
    return " · ".join(parts)
