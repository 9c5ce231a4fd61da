"""The relay's ledger: users, spend, upstream jobs and each student's videos, behind :class:`RelayStorage`.

:class:`SqliteStorage` keeps them in one SQLite file (WAL) in the data directory. Everything that must not race
(the budget check and the charge, the choice of an upstream job to share) is one :meth:`RelayStorage.admit`
transaction, so another implementation (a shared SQL server) replaces this class without touching the relay.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

DB_NAME = "relay.sqlite3"
UNFINISHED = ("submitting", "queued", "in_progress", "fetching")
"""Upstream statuses of a job the relay still follows (``submitting``: the create has not answered yet)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL, budget REAL, admin INTEGER NOT NULL, created_at REAL);
CREATE TABLE IF NOT EXISTS upstream (
  key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, shared INTEGER NOT NULL, request TEXT NOT NULL,
  upstream_id TEXT, status TEXT NOT NULL, error_code TEXT, error TEXT, created_at REAL, done_at REAL);
CREATE INDEX IF NOT EXISTS upstream_fp ON upstream (fingerprint, shared);
CREATE TABLE IF NOT EXISTS videos (
  id TEXT PRIMARY KEY, user TEXT NOT NULL, upstream_key TEXT NOT NULL, charge REAL NOT NULL, hit INTEGER NOT NULL,
  created_at REAL NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS videos_user ON videos (user);
CREATE INDEX IF NOT EXISTS videos_upstream ON videos (upstream_key);
CREATE TABLE IF NOT EXISTS creates (user TEXT NOT NULL, at REAL NOT NULL);
"""


@dataclass(frozen=True)
class User:
    """A person the relay knows: a student (``admin`` False) or a teacher; ``budget`` None is no limit."""

    name: str
    budget: float | None
    admin: bool
    spent: float = 0.0

    @property
    def remaining(self) -> float | None:
        """Dollars left, or None without a budget."""
        return None if self.budget is None else round(self.budget - self.spent, 6)


@dataclass(frozen=True)
class Upstream:
    """One job on the upstream service, shared by every video of its ``key``."""

    key: str
    fingerprint: str
    request: dict[str, Any]
    upstream_id: str | None
    status: str
    error_code: str | None
    error: str | None
    created_at: float
    done_at: float | None


@dataclass(frozen=True)
class VideoRow:
    """A student's video: its own ID, its owner, the upstream job it shows, what it was charged."""

    id: str
    user: str
    upstream_key: str
    charge: float
    hit: bool
    created_at: float
    deleted: bool


@dataclass(frozen=True)
class Admission:
    """The outcome of :meth:`RelayStorage.admit`: the upstream job the video shows and whether it is new."""

    upstream_key: str
    charge: float
    hit: bool
    new_upstream: bool


class BudgetRefused(Exception):
    """The create would cross the user's budget; nothing was recorded or sent."""

    def __init__(self, price: float, remaining: float) -> None:
        super().__init__(price, remaining)
        self.price, self.remaining = price, remaining


class RelayStorage(Protocol):
    """What the relay keeps; every method is atomic and may be called from any thread."""

    def add_user(self, name: str, token_hash: str, *, budget: float | None, admin: bool) -> None:
        """Add a user; ValueError if the name is taken."""

    def user(self, name: str) -> User | None:
        """The user called ``name`` with what they spent, or None."""

    def user_by_token(self, token_hash: str) -> User | None:
        """The user whose token hashes to ``token_hash``, or None."""

    def users(self) -> list[User]:
        """Every user, by name."""

    def set_budget(self, name: str, budget: float | None) -> bool:
        """Change a budget; False for an unknown user."""

    def remove_user(self, name: str) -> bool:
        """Remove a user (their videos' records stay, for the bill); False if unknown."""

    def admit(
        self,
        video_id: str,
        user: str,
        fingerprint: str,
        request: Mapping[str, Any],
        price: float,
        *,
        share: bool,
        now: float,
    ) -> Admission:
        """Record a new video: shown by the unfinished or completed shared upstream job of ``fingerprint`` free
        of charge (a hit), else by a new upstream job charged ``price``; BudgetRefused if that crosses the
        budget. One transaction."""

    def creates_since(self, user: str, since: float) -> list[float]:
        """When ``user``'s admitted creates at or after ``since`` happened, oldest first."""

    def video(self, video_id: str) -> VideoRow | None:
        """A video's record, deleted ones included, or None."""

    def videos(self, user: str | None = None) -> list[VideoRow]:
        """The videos of ``user`` (everyone's if None) not deleted, oldest first."""

    def mark_deleted(self, video_id: str) -> None:
        """The student deleted the video (its charge stays)."""

    def upstream(self, key: str) -> Upstream | None:
        """An upstream job, or None."""

    def unfinished_upstreams(self) -> list[Upstream]:
        """The upstream jobs still followed (to resume after a restart)."""

    def update_upstream(self, key: str, **fields: Any) -> None:
        """Set ``upstream_id``, ``status``, ``error_code``, ``error`` or ``done_at`` of an upstream job."""

    def refund(self, upstream_key: str) -> float:
        """Give back what the videos of a failed upstream job were charged; the dollars refunded."""


class SqliteStorage:
    """:class:`RelayStorage` in ``data_dir/relay.sqlite3`` (WAL), made readable by its owner only."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_NAME
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        for path in (self.path, self.path.with_name(DB_NAME + "-wal"), self.path.with_name(DB_NAME + "-shm")):
            if path.exists():
                path.chmod(0o600)  # token hashes and spend: the teacher's alone

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def _write(self, sql: str, *args: Any) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # ----- users ------------------------------------------------------------------------------------------
    def _user(self, row: sqlite3.Row) -> User:
        return User(row["name"], row["budget"], bool(row["admin"]), self._spent(row["name"]))

    def _spent(self, name: str) -> float:
        rows = self._rows("SELECT COALESCE(SUM(charge), 0) AS s FROM videos WHERE user = ?", name)
        return round(float(rows[0]["s"]), 6)

    def add_user(self, name: str, token_hash: str, *, budget: float | None, admin: bool) -> None:
        """Add a user; ValueError if the name is taken."""
        try:
            self._write("INSERT INTO users VALUES (?, ?, ?, ?, ?)", name, token_hash, budget, int(admin), time.time())
        except sqlite3.IntegrityError:
            raise ValueError(f"a user called {name!r} exists already; pick another name") from None

    def user(self, name: str) -> User | None:
        """The user called ``name`` with what they spent, or None."""
        rows = self._rows("SELECT * FROM users WHERE name = ?", name)
        return self._user(rows[0]) if rows else None

    def user_by_token(self, token_hash: str) -> User | None:
        """The user whose token hashes to ``token_hash``, or None."""
        rows = self._rows("SELECT * FROM users WHERE token_hash = ?", token_hash)
        return self._user(rows[0]) if rows else None

    def users(self) -> list[User]:
        """Every user, by name."""
        return [self._user(row) for row in self._rows("SELECT * FROM users ORDER BY name")]

    def set_budget(self, name: str, budget: float | None) -> bool:
        """Change a budget; False for an unknown user."""
        return self._write("UPDATE users SET budget = ? WHERE name = ?", budget, name) > 0

    def remove_user(self, name: str) -> bool:
        """Remove a user (their videos' records stay, for the bill); False if unknown."""
        return self._write("DELETE FROM users WHERE name = ?", name) > 0

    # ----- admission --------------------------------------------------------------------------------------
    def admit(
        self,
        video_id: str,
        user: str,
        fingerprint: str,
        request: Mapping[str, Any],
        price: float,
        *,
        share: bool,
        now: float,
    ) -> Admission:
        """See :meth:`RelayStorage.admit`."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                admission = self._admit(video_id, user, fingerprint, request, price, share=share, now=now)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return admission

    def _admit(
        self,
        video_id: str,
        user: str,
        fingerprint: str,
        request: Mapping[str, Any],
        price: float,
        *,
        share: bool,
        now: float,
    ) -> Admission:
        db = self._db
        found = None
        if share:
            found = db.execute(
                "SELECT key FROM upstream WHERE fingerprint = ? AND shared = 1 AND status != 'failed' "
                "ORDER BY created_at DESC LIMIT 1",
                (fingerprint,),
            ).fetchone()
        if found is not None:
            key, charge, new = str(found["key"]), 0.0, False
        else:
            found_user = db.execute("SELECT budget FROM users WHERE name = ?", (user,)).fetchone()
            budget = found_user["budget"] if found_user is not None else 0.0  # removed a moment ago: nothing left
            spent = db.execute("SELECT COALESCE(SUM(charge), 0) FROM videos WHERE user = ?", (user,)).fetchone()[0]
            if budget is not None and spent + price > budget + 1e-9:
                raise BudgetRefused(price, round(max(0.0, budget - spent), 6))
            key, charge, new = f"up_{video_id}", price, True
            db.execute(
                "INSERT INTO upstream (key, fingerprint, shared, request, status, created_at) "
                "VALUES (?, ?, ?, ?, 'submitting', ?)",
                (key, fingerprint, int(share), json.dumps(dict(request)), now),
            )
        db.execute(
            "INSERT INTO videos (id, user, upstream_key, charge, hit, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (video_id, user, key, charge, int(not new), now),
        )
        db.execute("DELETE FROM creates WHERE at < ?", (now - 3600,))  # only the last minute is ever asked for
        db.execute("INSERT INTO creates VALUES (?, ?)", (user, now))
        return Admission(upstream_key=key, charge=charge, hit=not new, new_upstream=new)

    def creates_since(self, user: str, since: float) -> list[float]:
        """When ``user``'s admitted creates at or after ``since`` happened, oldest first."""
        rows = self._rows("SELECT at FROM creates WHERE user = ? AND at >= ? ORDER BY at", user, since)
        return [float(row["at"]) for row in rows]

    # ----- videos and upstream jobs -----------------------------------------------------------------------
    @staticmethod
    def _video(row: sqlite3.Row) -> VideoRow:
        return VideoRow(
            row["id"], row["user"], row["upstream_key"], row["charge"], bool(row["hit"]), row["created_at"],
            bool(row["deleted"]),
        )  # fmt: skip

    def video(self, video_id: str) -> VideoRow | None:
        """A video's record, deleted ones included, or None."""
        rows = self._rows("SELECT * FROM videos WHERE id = ?", video_id)
        return self._video(rows[0]) if rows else None

    def videos(self, user: str | None = None) -> list[VideoRow]:
        """The videos of ``user`` (everyone's if None) not deleted, oldest first."""
        if user is None:
            rows = self._rows("SELECT * FROM videos WHERE deleted = 0 ORDER BY created_at, id")
        else:
            rows = self._rows("SELECT * FROM videos WHERE deleted = 0 AND user = ? ORDER BY created_at, id", user)
        return [self._video(row) for row in rows]

    def mark_deleted(self, video_id: str) -> None:
        """The student deleted the video (its charge stays)."""
        self._write("UPDATE videos SET deleted = 1 WHERE id = ?", video_id)

    @staticmethod
    def _upstream(row: sqlite3.Row) -> Upstream:
        return Upstream(
            row["key"], row["fingerprint"], json.loads(row["request"]), row["upstream_id"], row["status"],
            row["error_code"], row["error"], row["created_at"], row["done_at"],
        )  # fmt: skip

    def upstream(self, key: str) -> Upstream | None:
        """An upstream job, or None."""
        rows = self._rows("SELECT * FROM upstream WHERE key = ?", key)
        return self._upstream(rows[0]) if rows else None

    def unfinished_upstreams(self) -> list[Upstream]:
        """The upstream jobs still followed (to resume after a restart)."""
        marks = ",".join("?" * len(UNFINISHED))
        return [self._upstream(r) for r in self._rows(f"SELECT * FROM upstream WHERE status IN ({marks})", *UNFINISHED)]

    def update_upstream(self, key: str, **fields: Any) -> None:
        """Set ``upstream_id``, ``status``, ``error_code``, ``error`` or ``done_at`` of an upstream job."""
        allowed = {"upstream_id", "status", "error_code", "error", "done_at"}
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"update_upstream takes {sorted(allowed)}")
        columns = ", ".join(f"{name} = ?" for name in fields)
        self._write(f"UPDATE upstream SET {columns} WHERE key = ?", *fields.values(), key)

    def refund(self, upstream_key: str) -> float:
        """Give back what the videos of a failed upstream job were charged; the dollars refunded."""
        with self._lock:
            rows = self._rows("SELECT COALESCE(SUM(charge), 0) AS s FROM videos WHERE upstream_key = ?", upstream_key)
            self._write("UPDATE videos SET charge = 0 WHERE upstream_key = ?", upstream_key)
            return float(rows[0]["s"])
