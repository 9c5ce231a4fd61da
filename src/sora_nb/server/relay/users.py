"""Relay users: tokens (shown once, stored hashed) and the ``sora-nb users`` commands that manage them."""

from __future__ import annotations

import argparse
import hashlib
import math
import secrets
from pathlib import Path

import platformdirs

from sora_nb.server.relay.storage import SqliteStorage, User

TOKEN_PREFIX = "sk-relay-"


def default_relay_dir() -> Path:
    """Where the relay keeps its ledger and videos unless ``--data-dir`` says otherwise."""
    return platformdirs.user_data_path("sora_nb") / "relay"


def new_token() -> str:
    """A fresh random token (192 bits), to be shown to its owner once."""
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    """What the ledger keeps of a token: its SHA-256 (tokens are random, so no salt or stretching is needed)."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def add_user(storage: SqliteStorage, name: str, *, budget: float | None, admin: bool) -> str:
    """Add a user and return their new token; ValueError for a bad name or budget, or a name taken."""
    if not name or len(name) > 64 or not name.isprintable() or name != name.strip():
        raise ValueError(f"the user name {name[:80]!r} must be 1-64 printable characters without outer spaces")
    token = new_token()
    storage.add_user(name, hash_token(token), budget=check_budget(budget), admin=admin)
    return token


def check_budget(budget: float | None) -> float | None:
    """``budget`` if it is None or a finite amount of dollars >= 0, else ValueError."""
    if budget is not None and not (math.isfinite(budget) and budget >= 0):
        raise ValueError(f"a budget is dollars >= 0 (got {budget}); leave it out for no limit")
    return budget


def _row(user: User) -> str:
    budget = "no limit" if user.budget is None else f"${user.budget:.2f}"
    left = "" if user.remaining is None else f", ${user.remaining:.2f} left"
    role = " (admin)" if user.admin else ""
    return f"{user.name}{role}: spent ${user.spent:.2f} of {budget}{left}"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``users`` command and its subcommands."""
    from sora_nb.cli import USERS_HELP

    u = sub.add_parser("users", help=USERS_HELP)
    u_sub = u.add_subparsers(dest="users_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=None, help=f"the relay's data directory (default: {default_relay_dir()})"
    )
    add = u_sub.add_parser("add", parents=[common], help="add a user and print their token (shown once)")
    add.add_argument("name")
    add.add_argument("--budget", type=float, default=None, help="dollars this user may spend (default: no limit)")
    add.add_argument("--admin", action="store_true", help="a teacher: may open /admin and read everyone's usage")
    u_sub.add_parser("list", parents=[common], help="list users with their spend and budget")
    budget = u_sub.add_parser("set-budget", parents=[common], help="change a user's budget")
    budget.add_argument("name")
    budget.add_argument("usd", help="dollars, or 'none' for no limit")
    remove = u_sub.add_parser("remove", parents=[common], help="remove a user (their token stops working)")
    remove.add_argument("name")


def run(args: argparse.Namespace) -> int:
    """Run a ``users`` subcommand; 0 on success, 2 with a message on stderr otherwise."""
    import sys

    storage = SqliteStorage(args.data_dir or default_relay_dir())
    try:
        if args.users_command == "add":
            token = add_user(storage, args.name, budget=args.budget, admin=args.admin)
            print(f"added {args.name}; their token (shown only now, keep it safe):\n{token}")
        elif args.users_command == "list":
            users = storage.users()
            print("\n".join(_row(user) for user in users) if users else "no users yet: sora-nb users add NAME")
        elif args.users_command == "set-budget":
            usd = None if args.usd.lower() == "none" else check_budget(float(args.usd))
            if not storage.set_budget(args.name, usd):
                raise ValueError(f"no user called {args.name!r}; see sora-nb users list")
            user = storage.user(args.name)
            print(_row(user) if user else args.name)
        else:
            if not storage.remove_user(args.name):
                raise ValueError(f"no user called {args.name!r}; see sora-nb users list")
            print(f"removed {args.name}; their token no longer works")
    except ValueError as exc:
        print(f"sora-nb users: {exc}", file=sys.stderr)
        return 2
    finally:
        storage.close()
    return 0
