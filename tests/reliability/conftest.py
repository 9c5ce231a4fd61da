"""Reliability tests record one row per case; at the end of the session each module's rows are written as a
Markdown table to ``artifacts/reliability/<module>.md`` (docs/reliability.md summarises them)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "reliability"
_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``record(column=value, ...)`` adds a row (the test's case ID first) to this module's table."""
    table = request.module.__name__.rsplit(".", 1)[-1]
    case = request.node.callspec.id if hasattr(request.node, "callspec") else request.node.name

    def add(**row: Any) -> None:
        _rows[table].append({"case": case, **row})

    return add


def pytest_sessionfinish() -> None:
    if not _rows:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for table, rows in _rows.items():
        columns = list(dict.fromkeys(key for row in rows for key in row))
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in rows:
            cells = (str(row.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in columns)
            lines.append("| " + " | ".join(cells) + " |")
        (ARTIFACTS / f"{table}.md").write_text("\n".join(lines) + "\n")
