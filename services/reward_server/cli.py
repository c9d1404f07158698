"""``reward-server serve`` and ``reward-server score``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError


def _settings(profiles: str | None):
    from .settings import Settings

    return Settings(profiles_path=Path(profiles)) if profiles else Settings()


def _load_profiles_or_exit(settings) -> None:
    from .profiles import ProfileError, ProfileSet

    try:
        ProfileSet.load(settings.profiles_path)
    except ProfileError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from .app import create_app

    from . import logs

    settings = _settings(args.profiles)
    logs.configure(settings.log_format, args.log_level or settings.log_level)
    _load_profiles_or_exit(settings)  # fail before binding the port
    # Our access line (JSON, with the request id) replaces uvicorn's.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None, access_log=False)


def score(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .pipeline import ScoringPipeline, UnknownProfile
    from .schema import ScoreItem, ScoreRequest

    settings = _settings(args.profiles)
    _load_profiles_or_exit(settings)
    items: list[ScoreItem] = []
    with open(args.input) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(ScoreItem.model_validate_json(line))
            except ValidationError as exc:
                print(f"{args.input}:{n}: invalid item: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
    # Keep each GRPO group inside one batch: the length penalty needs the whole group.
    batches: list[list[ScoreItem]] = []
    current: list[ScoreItem] = []
    for i, item in enumerate(items):
        current.append(item)
        nxt = items[i + 1] if i + 1 < len(items) else None
        if len(current) >= args.batch_size and (nxt is None or nxt.group_id is None or nxt.group_id != item.group_id):
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    with ScoringPipeline(settings) as pipeline, open(args.output, "w") as out, \
            tqdm(total=len(items), unit="item", desc="scoring") as bar:
        for batch in batches:
            try:
                resp = pipeline.score(ScoreRequest(profile=args.profile, items=batch))
            except UnknownProfile as exc:
                print(str(exc), file=sys.stderr)
                raise SystemExit(2) from None
            for r in resp.results:
                row = r.model_dump(mode="json")
                row["profile"], row["profile_version"] = resp.profile, resp.profile_version
                out.write(json.dumps(row) + "\n")
            bar.update(len(batch))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="reward-server", description="harmo reward server")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the HTTP service")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--profiles", help="reward profiles YAML (default: the built-in profiles)")
    s.add_argument("--log-level", help="default: HARMO_LOG_LEVEL, else INFO")
    s.set_defaults(func=serve)
    c = sub.add_parser("score", help="score a JSONL file of items offline, through the same pipeline")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--profile", help="profile name (default: by data_source, else the default profile)")
    c.add_argument("--profiles", help="reward profiles YAML")
    c.add_argument("--batch-size", type=int, default=512)
    c.set_defaults(func=score)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
