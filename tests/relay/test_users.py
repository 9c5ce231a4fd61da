"""The relay's ledger and the ``sora-nb users`` commands: tokens shown once and stored hashed, budgets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sora_nb.cli import main
from sora_nb.server.relay.storage import BudgetRefused, SqliteStorage
from sora_nb.server.relay.users import hash_token


def _token(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_users_commands_print_a_token_once_and_store_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "add", "alice", "--budget", "2", "--data-dir", str(tmp_path)]) == 0
    token = _token(capsys.readouterr().out)
    assert token.startswith("sk-relay-")
    assert main(["users", "add", "teacher", "--admin", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    raw = (tmp_path / "relay.sqlite3").read_bytes()
    assert token.encode() not in raw
    assert (tmp_path / "relay.sqlite3").stat().st_mode & 0o077 == 0
    storage = SqliteStorage(tmp_path)
    user = storage.user_by_token(hash_token(token))
    assert user is not None and user.name == "alice" and user.budget == 2 and not user.admin
    storage.close()

    assert main(["users", "set-budget", "alice", "3.5", "--data-dir", str(tmp_path)]) == 0
    assert "spent $0.00 of $3.50" in capsys.readouterr().out
    assert main(["users", "list", "--data-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "alice: spent $0.00 of $3.50" in listing and "teacher (admin)" in listing and token not in listing
    assert main(["users", "remove", "alice", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    storage = SqliteStorage(tmp_path)
    assert storage.user_by_token(hash_token(token)) is None
    storage.close()


def test_users_commands_refuse_a_taken_name_an_unknown_user_and_a_negative_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "add", "bob", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["users", "add", "bob", "--data-dir", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["users", "remove", "carol", "--data-dir", str(tmp_path)]) == 2
    assert "no user called 'carol'" in capsys.readouterr().err
    assert main(["users", "set-budget", "bob", "-1", "--data-dir", str(tmp_path)]) == 2
    assert "dollars >= 0" in capsys.readouterr().err


def test_admit_shares_one_upstream_job_and_charges_its_first_video_only(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path)
    storage.add_user("a", "ha", budget=1.0, admin=False)
    storage.add_user("b", "hb", budget=1.0, admin=False)
    first = storage.admit("v1", "a", "fp", {"prompt": "x"}, 0.4, share=True, now=1.0)
    second = storage.admit("v2", "b", "fp", {"prompt": "x"}, 0.4, share=True, now=2.0)
    assert first.new_upstream and not first.hit and first.charge == 0.4
    assert not second.new_upstream and second.hit and second.charge == 0
    assert second.upstream_key == first.upstream_key
    unshared = storage.admit("v3", "b", "fp", {"prompt": "x"}, 0.4, share=False, now=3.0)
    assert unshared.new_upstream and unshared.upstream_key != first.upstream_key
    storage.admit("v4", "a", "fp2", {"prompt": "y"}, 0.4, share=True, now=4.0)
    with pytest.raises(BudgetRefused) as refused:
        storage.admit("v5", "a", "fp3", {"prompt": "z"}, 0.4, share=True, now=5.0)
    assert refused.value.remaining == pytest.approx(0.2)
    assert storage.video("v5") is None  # a refusal records nothing
    assert storage.refund(first.upstream_key) == pytest.approx(0.4)
    user = storage.user("a")
    assert user is not None and user.spent == pytest.approx(0.4)
    # a failed upstream job is not shared: the next identical request makes (and pays for) a new one
    storage.update_upstream(first.upstream_key, status="failed")
    again = storage.admit("v6", "b", "fp", {"prompt": "x"}, 0.4, share=True, now=6.0)
    assert again.new_upstream and again.charge == 0.4
    assert storage.creates_since("a", 2.0) == [4.0]
    mode = sqlite3.connect(tmp_path / "relay.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    storage.close()
