"""The ``sora-nb`` command line.

Each command imports what it needs when it runs: ``sora-nb cache`` loads neither the server nor HTTP, so it
starts at once; the ``serve`` options (whose help names the server's defaults) are built only for ``serve``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sora_nb.server.launch import ServerHandle
    from sora_nb.server.relay.settings import RelayConfig

SERVE_HELP = "run the local preview Videos API server"
USERS_HELP = "manage the students and teachers of a class relay (sora-nb serve --engine relay)"
# `sora-nb generate`'s flag for each request parameter (sora_nb.request.RequestParams), in --help order
REQUEST_FLAGS: dict[str, dict[str, Any]] = {
    "model": {"help": "model name (default: the server's, sora-2)"},
    "size": {"help": "WIDTHxHEIGHT, e.g. 1280x720"},
    "seconds": {"help": "clip length: 4, 8, 12, 16 or 20"},
    "image": {"type": Path, "help": "a PNG, JPEG or WEBP to start from (must match --size)"},
    "seed": {"type": int, "help": "seed, where the service supports one"},
    "negative_prompt": {"help": "what the video should not show (open-weights engines)"},
    "steps": {"type": int, "help": "denoising steps (num_inference_steps), e.g. 30"},
    "guidance": {"type": float, "help": "guidance scale (guidance_scale), e.g. 5.0"},
    "fps": {"type": int, "help": "frames per second"},
    "frames": {"type": int, "help": "number of frames (num_frames); with --fps it sets the length"},
}


def _parser(*, serve_options: bool = True, users_options: bool = True) -> argparse.ArgumentParser:
    """The parser; without ``serve_options`` the ``serve`` command is listed but takes no options (so building
    the parser for another command imports nothing of the server), and likewise ``users``."""
    parser = argparse.ArgumentParser(prog="sora-nb", description="Live AI video generation for notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    if serve_options:
        _add_serve(sub)
    else:
        sub.add_parser("serve", help=SERVE_HELP)
    _add_generate(sub)
    _add_cache(sub)
    if users_options:
        from sora_nb.server.relay import users

        users.add_parser(sub)
    else:
        sub.add_parser("users", help=USERS_HELP)
    return parser


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sora_nb.server.config import DEFAULT_BLOCKED_WORDS, DEFAULT_KEY, ServerConfig, default_data_dir
    from sora_nb.server.dialects import DIALECTS

    s = sub.add_parser(
        "serve",
        help=SERVE_HELP,
        description="Run the local Videos API server: synthetic 'local preview' MP4s, no key, no network.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="dialects:\n" + "\n".join(f"  {d.name:13} {d.summary}" for d in DIALECTS.values()),
    )
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1); 0.0.0.0 serves the network (a classroom) and then needs "
        "a key of your own or prints a random one",
    )
    s.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: 8000)")
    s.add_argument("--dialect", default="openai", choices=list(DIALECTS), help="API dialect (default: openai)")
    s.add_argument("--served-model", default=ServerConfig.served_model, help="the model an engine dialect serves")
    s.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="job pace: 1 finishes a 4 s clip in about 3.5 s, 10 is ten times faster (default: 1)",
    )
    s.add_argument(
        "--data-dir", type=Path, default=None, help=f"where jobs and videos persist (default: {default_data_dir()})"
    )
    s.add_argument(
        "--key",
        default=None,
        help=f"API key callers must send (default: {DEFAULT_KEY} on loopback; beyond loopback a random key, "
        "printed once)",
    )
    s.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="the address other machines reach this server at, e.g. http://classroom-pc.local:8000; used in "
        "the URLs the server hands out (default: the host each request was sent to)",
    )
    s.add_argument(
        "--allow-remote-inputs",
        action="store_true",
        default=None,
        help="fetch http(s) image_url inputs (public addresses only) even when listening beyond loopback "
        "(on loopback they are always fetched)",
    )
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
    s.add_argument(
        "--no-poll-hint", action="store_true", help="send no openai-poll-after-ms header (like most gateways)"
    )
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    r = s.add_argument_group(
        "class relay (--engine relay)",
        "forward students' requests to an upstream Videos API with one key (from the environment variable "
        "SORA_NB_UPSTREAM_KEY), a token and a budget per student (sora-nb users add)",
    )
    r.add_argument("--engine", default="synthetic", choices=["synthetic", "relay"], help="what makes the videos")
    r.add_argument("--upstream", metavar="URL", help="the Videos API the relay forwards to")
    r.add_argument("--upstream-provider", default="openai", metavar="P", help="its sora_nb provider profile")
    r.add_argument("--prices", type=Path, metavar="FILE", help='JSON prices for gateway models: {"model": usd/s}')
    r.add_argument("--no-share", action="store_true", help="give identical requests their own upstream jobs (exams)")
    r.add_argument("--user-jobs", type=int, default=2, help="unfinished videos per student (default: 2)")
    r.add_argument("--creates-per-minute", type=int, default=10, help="creates per student a minute (default: 10)")


def _add_generate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = sub.add_parser(
        "generate",
        help="generate a video and print its cached path",
        description="Generate a video (on the local preview server unless SORA_NB_BASE_URL is set), show "
        "progress, and print the path of the cached MP4. Running the same request again costs nothing.",
    )
    g.add_argument("prompt", help="what the video should show")
    for name, flag in REQUEST_FLAGS.items():
        g.add_argument(f"--{name.replace('_', '-')}", **flag)
    g.add_argument("--out", type=Path, help="also copy the MP4 here")
    g.add_argument("--new", action="store_true", help="make a fresh take even if this request was made before")


def _add_cache(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("cache", help="look at or clean the local video cache")
    c_sub = c.add_subparsers(dest="cache_command", required=True)
    c_sub.add_parser("path", help="print the cache directory")
    c_sub.add_parser("ls", help="list cached videos, newest first")
    p = c_sub.add_parser("prune", help="remove old cached videos")
    p.add_argument("--older-than", type=float, metavar="DAYS", help="remove videos saved more than DAYS ago")
    p.add_argument("--keep", type=int, metavar="N", help="keep only the newest N videos")


def _announce(key_given: bool) -> object:
    from sora_nb.server.config import DEFAULT_KEY

    def announce(handle: ServerHandle) -> None:
        key = "(the one given with --key)" if key_given else handle.key
        where = handle.base_url
        if handle.public_base_url != handle.base_url:
            where = f"{handle.public_base_url} (on this machine: {handle.base_url})"
        print(f"sora_nb local preview server ({handle.dialect} dialect) listening on {where}", flush=True)
        print(f"  key:  {key}", flush=True)
        if not key_given and handle.key != DEFAULT_KEY:
            print(
                "        (made for this run: give it to the people who connect, or choose one with --key)", flush=True
            )
        print(f"  data: {handle.data_dir}", flush=True)
        if handle.cdn_url:
            print(f"  cdn:  {handle.cdn_url} (signed download URLs)", flush=True)
        if not handle.app.config.allow_remote_inputs:
            print("  image_url inputs from the network are off (--allow-remote-inputs turns them on)", flush=True)
        print("Videos are synthetic previews, not a real model. Press Ctrl+C to stop.", flush=True)

    return announce


def _relay_config(args: argparse.Namespace) -> RelayConfig | None:
    from sora_nb.server.relay.settings import RelayConfig

    if args.engine != "relay":
        return None
    return RelayConfig(
        upstream=args.upstream or "",
        upstream_provider=args.upstream_provider,
        prices=args.prices,
        share=not args.no_share,
        user_jobs=args.user_jobs,
        creates_per_minute=args.creates_per_minute,
    )


def _announce_relay(handle: ServerHandle) -> None:
    relay = handle.app.relay
    assert relay is not None
    print(f"sora_nb class relay listening on {handle.public_base_url}", flush=True)
    print(f"  upstream: {relay.config.upstream} ({relay.config.upstream_provider} profile)", flush=True)
    if not relay.has_key:
        print("  no SORA_NB_UPSTREAM_KEY in the environment: no key is sent upstream", flush=True)
    share = "shared" if relay.config.share else "not shared (--no-share)"
    print(
        f"  identical requests: {share}; per student: {relay.config.user_jobs} unfinished videos, "
        f"{relay.config.creates_per_minute} creates a minute",
        flush=True,
    )
    print(
        f"  data: {handle.data_dir} (users: sora-nb users add NAME --budget USD --data-dir {handle.data_dir})",
        flush=True,
    )
    print(f"  teacher's view: {handle.public_base_url.removesuffix('/v1')}/admin", flush=True)
    print("Students: configure(base_url=<the URL above>, api_key=<their token>). Press Ctrl+C to stop.", flush=True)


def _serve(args: argparse.Namespace) -> int:
    from sora_nb.server.config import ServerConfig
    from sora_nb.server.launch import serve  # the server (Starlette, uvicorn, the renderer) loads only to serve

    config = ServerConfig(
        dialect=args.dialect,
        speed=args.speed,
        data_dir=args.data_dir,
        key=args.key or None,
        faults=args.faults,
        retention=args.retention,
        max_active=args.max_active,
        blocked_words=tuple(w.strip() for w in args.blocked_words.split(",") if w.strip()),
        poll_hint=not args.no_poll_hint,
        allow_remote_inputs=args.allow_remote_inputs,
        public_url=args.public_url,
        served_model=args.served_model,
        engine=args.engine,
        relay=_relay_config(args),
    )
    announce = _announce_relay if args.engine == "relay" else _announce(bool(args.key))
    try:
        serve(config, host=args.host, port=args.port, log_level=args.log_level, announce=announce)
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


def _generate(args: argparse.Namespace) -> int:
    from sora_nb.cache import open_asset
    from sora_nb.errors import SoraError
    from sora_nb.jobs import submit
    from sora_nb.progress import follow
    from sora_nb.request import PARAMS

    try:
        job = submit(args.prompt, new=args.new, **{name: getattr(args, name) for name in PARAMS})
        follow(job)
        path = job.result()
    except SoraError as exc:
        print(f"sora-nb generate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sora-nb generate: interrupted; run the same command again to pick the job up.", file=sys.stderr)
        return 130
    if job.local:
        print("(local preview: a synthetic video from the embedded server, not a real model)", file=sys.stderr)
    elif job.backend:  # which engine made it ("SGLang · 127.0.0.1:30000"), detected or configured
        print(f"(made by {job.backend})", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        try:  # through open_asset: a link swapped into a shared cache is never copied
            with open_asset(path) as src, args.out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        except OSError as exc:
            print(f"sora-nb generate: the video was not copied to {args.out}: {exc}", file=sys.stderr)
            return 1
        print(args.out)
    else:
        print(path)
    return 0


def _cache(args: argparse.Namespace) -> int:
    from sora_nb.cache import VideoCache
    from sora_nb.config import settings

    cache = VideoCache(settings().cache_dir)
    if args.cache_command == "path":
        print(cache.root)
    elif args.cache_command == "ls":
        entries = cache.ls()
        for entry in entries:
            saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.saved_at))
            size = entry.path.stat().st_size / 2**20 if entry.path else 0.0
            print(f"{entry.id}  {saved}  {size:6.1f} MiB  {entry.prompt[:60]}")
        print(f"{len(entries)} videos, {cache.size() / 2**20:.1f} MiB in {cache.root}", file=sys.stderr)
    else:
        if args.older_than is None and args.keep is None:
            print("sora-nb cache prune: give --older-than DAYS and/or --keep N", file=sys.stderr)
            return 2
        removed = cache.prune(
            older_than=args.older_than * 86400 if args.older_than is not None else None, keep=args.keep
        )
        print(f"removed {len(removed)} videos")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sora-nb``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(serve_options="serve" in argv, users_options="users" in argv).parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "users":
        from sora_nb.server.relay import users

        return users.run(args)
    if args.command == "generate":
        return _generate(args)
    return _cache(args)


if __name__ == "__main__":
    sys.exit(main())
