"""The ``sora-nb`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sora_nb.server.app import DEFAULT_BLOCKED_WORDS, DEFAULT_KEY, ServerConfig, default_data_dir
from sora_nb.server.dialects import DIALECTS
from sora_nb.server.runner import ServerHandle, serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sora-nb", description="Live AI video generation for notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "serve",
        help="run the local preview Videos API server",
        description="Run the local Videos API server: synthetic 'local preview' MP4s, no key, no network.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="dialects:\n" + "\n".join(f"  {d.name:13} {d.summary}" for d in DIALECTS.values()),
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: 8000)")
    s.add_argument("--dialect", default="openai", choices=list(DIALECTS), help="API dialect (default: openai)")
    s.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="job pace: 1 finishes a 4 s clip in about 3.5 s, 10 is ten times faster (default: 1)",
    )
    s.add_argument(
        "--data-dir", type=Path, default=None, help=f"where jobs and videos persist (default: {default_data_dir()})"
    )
    s.add_argument("--key", default=None, help=f"API key callers must send (default: {DEFAULT_KEY})")
    s.add_argument(
        "--faults", default=None, help="inject faults, e.g. '5xx=0.3,429=0.1,drop=0.5,stall=3,expire=60,json200,seed=7'"
    )
    s.add_argument(
        "--retention", type=float, default=86400.0, help="seconds a finished video stays downloadable (default: 86400)"
    )
    s.add_argument(
        "--max-active",
        type=int,
        default=32,
        help="jobs queued or running at once before creates answer 429 (default: 32)",
    )
    s.add_argument(
        "--blocked-words",
        default=",".join(DEFAULT_BLOCKED_WORDS),
        help="comma-separated words whose prompts fail with moderation_blocked "
        f"(default: {','.join(DEFAULT_BLOCKED_WORDS)})",
    )
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def _announce(key_given: bool) -> object:
    def announce(handle: ServerHandle) -> None:
        key = "(the one given with --key)" if key_given else handle.key
        print(f"sora_nb local preview server ({handle.dialect} dialect) listening on {handle.base_url}", flush=True)
        print(f"  key:  {key}", flush=True)
        print(f"  data: {handle.data_dir}", flush=True)
        if handle.cdn_url:
            print(f"  cdn:  {handle.cdn_url} (signed download URLs)", flush=True)
        print("Videos are synthetic previews, not a real model. Press Ctrl+C to stop.", flush=True)

    return announce


def _serve(args: argparse.Namespace) -> int:
    config = ServerConfig(
        dialect=args.dialect,
        speed=args.speed,
        data_dir=args.data_dir,
        key=args.key or DEFAULT_KEY,
        faults=args.faults,
        retention=args.retention,
        max_active=args.max_active,
        blocked_words=tuple(w.strip() for w in args.blocked_words.split(",") if w.strip()),
    )
    try:
        serve(config, host=args.host, port=args.port, log_level=args.log_level, announce=_announce(bool(args.key)))
    except KeyboardInterrupt:
        print("sora-nb serve: stopped.", flush=True)
    except OSError as exc:
        print(
            f"sora-nb serve: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
            "choose another --port, or --port 0 for a free one.",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"sora-nb serve: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sora-nb``."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
