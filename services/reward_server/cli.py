"""``reward-server serve`` and ``reward-server score``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError


def _settings(profiles: str | None):
    from .settings import Settings

    return Settings(profiles_path=Path(profiles)) if profiles else Settings()


def _load_profiles_or_exit(settings):
    from .profiles import ProfileError, ProfileSet

    try:
        return ProfileSet.load(settings.profiles_path)
    except ProfileError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None


def _pull_command(settings, profiles, model: str) -> str:
    users = [n for n, p in profiles.profiles.items() if model in p.models_used]
    cmd = "reward-server models pull"
    if settings.profiles_path:
        cmd += f" --profiles {settings.profiles_path}"
    if users:
        cmd += f" --profile {users[0]}"
    return cmd


def _models_present_or_exit(settings, profiles) -> None:
    """Every model the profiles file defines is loaded: refuse to start where one is missing,
    naming it and the command that fetches it, rather than fail at the first request."""
    from .models.store import missing

    gone = missing(profiles.weights_refs())
    if gone:
        lines = ["cannot serve: model weights are missing or incomplete on this node:"]
        for model, problem in gone:
            lines.append(f"  model {model!r}: {problem}")
            lines.append(f"    fetch it with: {_pull_command(settings, profiles, model)}")
        lines.append("  (an offline node: copy the checkpoint folders into HARMO_MODEL_DIR; see docs/models.md)")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(3)


def pull_models(args: argparse.Namespace) -> None:
    """``reward-server models pull``: fetch and check the weights a profile (or the file) uses."""
    from .models.store import human, model_dir, pull

    settings = _settings(args.profiles)
    profiles = _load_profiles_or_exit(settings)
    try:
        refs = profiles.weights_refs(args.profile)
    except KeyError as exc:
        print(str(exc.args[0]), file=sys.stderr)
        raise SystemExit(2) from None
    scope = f"profile {args.profile!r}" if args.profile else "the profiles file"
    if not refs:
        print(f"{scope} reads no model weights from this node (packaged or served elsewhere): nothing to pull")
        return
    print(f"model directory: {model_dir()}")
    failed, total = 0, 0
    for name, ref in refs:
        try:
            got = pull(ref, mirror=Path(args.mirror) if args.mirror else None, refresh=args.refresh)
        except Exception as exc:  # noqa: BLE001 - the hub, the disk, a mirror: say which model and why
            print(f"  {name}: {ref.ref}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed += 1
            continue
        total += got.bytes
        state = "ok" if not got.problems else "INCOMPLETE"
        print(f"  {name}: {ref.ref} -> {got.path} [{got.action}, {got.files} files, {human(got.bytes)}] {state}")
        for problem in got.problems:
            print(f"    {problem}", file=sys.stderr)
        failed += bool(got.problems)
    print(f"{len(refs) - failed} of {len(refs)} models ready, {human(total)}")
    if failed:
        raise SystemExit(1)


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from . import logs
    from .app import create_app

    settings = _settings(args.profiles)
    logs.configure(settings.log_format, args.log_level or settings.log_level)
    profiles = _load_profiles_or_exit(settings)  # fail before binding the port
    _models_present_or_exit(settings, profiles)
    try:
        settings.keys()
    except (OSError, ValueError) as exc:
        print(f"cannot serve: API keys: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from .edge import guarded_protocol, raise_open_file_limit

    open_files = raise_open_file_limit()
    # The event loop waits for the GIL behind the scoring threads at each step of a request;
    # a shorter switch interval (5 ms by default) keeps the probes and small requests quick
    # while large requests are scored.
    sys.setswitchinterval(0.001)
    # Our access line (JSON, with the request id) replaces uvicorn's; edge.py's protocol is
    # uvicorn's own with the header, timeout and connection limits.
    config = uvicorn.Config(create_app(settings), host=args.host, port=args.port, log_config=None,
                            access_log=False, http=guarded_protocol(settings, open_files),
                            timeout_keep_alive=settings.keep_alive_s, backlog=2048)
    sockets = [config.bind_socket()]
    if settings.health_port is not None:
        sockets.append(uvicorn.Config(config.app, host=args.host, port=settings.health_port, log_config=None,
                                      access_log=False).bind_socket())
    uvicorn.Server(config).run(sockets=sockets)


def _fail(message: str) -> None:
    print(f"reward-server: {message}", file=sys.stderr)
    raise SystemExit(2)


def score(args: argparse.Namespace) -> None:
    """Score a JSONL file of items offline. Whatever can be wrong with the command (the input, the
    output's folder, the profile, an item) is said in one line before a model loads or a file is
    written; the output appears whole or not at all."""
    from harmo.protocol import ScoreItem

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        _fail(f"cannot read {src}: {'it is a directory' if src.is_dir() else 'no such file'}")
    for out in (dst, *([Path(args.report)] if args.report else [])):
        if not out.parent.is_dir():
            _fail(f"cannot write {out}: no folder {out.parent}")
    settings = _settings(args.profiles)
    profiles = _load_profiles_or_exit(settings)
    if args.profile is not None and args.profile not in profiles.profiles:
        _fail(f"unknown profile {args.profile!r}; known: {', '.join(sorted(profiles.profiles))}")
    items: list[ScoreItem] = []
    try:
        with open(src, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    items.append(ScoreItem.model_validate_json(line))
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(x) for x in first["loc"]) or "the line"
                    _fail(f"{src}:{n}: invalid item ({exc.error_count()} error(s)): {where}: {first['msg']}")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {src}: {exc}")
    if not items:
        _fail(f"{src} holds no items (one JSON object per line: see the README)")
    from .rewards.registry import tasks

    known = tasks()
    for n, item in enumerate(items, 1):
        if item.task not in known:
            _fail(f"{src}: item {n}: task {item.task!r} is not a task; known: {', '.join(sorted(known))}")
    _models_present_or_exit(settings, profiles)
    _score_file(args, settings, items, dst)


def _score_file(args: argparse.Namespace, settings, items, dst: Path) -> None:
    import tempfile

    from tqdm import tqdm

    from harmo.protocol import ScoreItem, ScoreRequest

    from .observatory import Summary
    from .pipeline import BadItem, ScoringPipeline, UnknownProfile

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
    # The report draws the whole run (up to a bound on memory), not the server's window.
    settings = settings.model_copy(update={"observatory": bool(args.report), "inspector_items": 0,
                                           "observatory_window": max(settings.observatory_window,
                                                                     min(len(items), 200_000))})
    summary = Summary()
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
    try:
        with ScoringPipeline(settings) as pipeline, os.fdopen(fd, "w", encoding="utf-8") as out, \
                tqdm(total=len(items), unit="item", desc="scoring", file=sys.stderr) as bar:
            for batch in batches:
                try:
                    resp = pipeline.score(ScoreRequest(profile=args.profile, items=batch))
                except (UnknownProfile, BadItem) as exc:
                    _fail(str(exc))
                for r in resp.results:
                    row = r.model_dump(mode="json")
                    row["profile"], row["profile_version"] = resp.profile, resp.profile_version
                    out.write(json.dumps(row) + "\n")
                    summary.add(r)
                bar.update(len(batch))
            snapshot = pipeline.observatory.snapshot(whole=True) if pipeline.observatory is not None else None
            names = sorted(pipeline.profiles.profiles)
            default = pipeline.profiles.default
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(summary.text(dst))
    if args.report:
        from .ui import report

        Path(args.report).write_text(report({"default_profile": default, "profiles": names, "observatory": snapshot,
                                             "inspected": None, "summary": summary.as_dict()},
                                            title=f"harmo reward report: {Path(args.input).name}"), encoding="utf-8")
        print(f"report: {args.report}")


def audit(args: argparse.Namespace) -> None:
    from . import audit as audit_

    if not args.url:
        settings = _settings(args.profiles)
        _models_present_or_exit(settings, _load_profiles_or_exit(settings))
    raise SystemExit(audit_.main(args.profile, args.url, args.json, args.profiles))


def healthcheck(args: argparse.Namespace) -> None:
    """A container health check that every engine runs alike (a plain argv, no shell, no quoting):
    exit 0 when the server answers 200, 1 otherwise, saying why on stderr."""
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{args.port}/{'readyz' if args.ready else 'healthz'}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            ok = resp.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(0 if ok else 1)


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
    c.add_argument("input", help="JSONL: one /score item per line (response, reference, task, group_id, ...)")
    c.add_argument("output", help="JSONL: one result per line, in the input's order")
    c.add_argument("--profile", help="profile name (default: by data_source, else the default profile)")
    c.add_argument("--profiles", help="reward profiles YAML")
    c.add_argument("--batch-size", type=int, default=512)
    c.add_argument("--report", metavar="FILE.html", help="also write the observatory's charts of this run as one "
                   "self-contained HTML file")
    c.set_defaults(func=score)
    a = sub.add_parser("audit", help="reward-hacking probes against a profile; exit 1 if a must-not-pay probe is paid")
    a.add_argument("--profile", help="profile name (default: the default profile)")
    a.add_argument("--profiles", help="reward profiles YAML (in-process runs)")
    a.add_argument("--url", help="audit a running server instead of an in-process pipeline")
    a.add_argument("--json", action="store_true", help="print the rows as JSON")
    a.set_defaults(func=audit)
    h = sub.add_parser("healthcheck", help="exit 0 if the local server answers /healthz (a container health check)")
    h.add_argument("--port", type=int, default=int(os.environ.get("HARMO_HEALTH_PORT") or os.environ.get("HARMO_PORT")
                                                    or "8000"), help="default: HARMO_HEALTH_PORT, else HARMO_PORT, "
                   "else 8000")
    h.add_argument("--ready", action="store_true", help="ask /readyz (models loaded) instead")
    h.add_argument("--timeout", type=float, default=3.0)
    h.set_defaults(func=healthcheck)
    m = sub.add_parser("models", help="model weights on this node").add_subparsers(dest="models_cmd", required=True)
    pl = m.add_parser("pull", help="download (or copy from a mirror) and check the weights the profiles use")
    pl.add_argument("--profile", help="only the models this profile uses (default: every model in the file)")
    pl.add_argument("--profiles", help="reward profiles YAML (default: HARMO_PROFILES_PATH, else the built-in)")
    pl.add_argument("--from", dest="mirror", metavar="DIR",
                    help="copy from a local mirror laid out as DIR/<org>/<name> instead of the hub")
    pl.add_argument("--refresh", action="store_true", help="fetch again even if a complete copy is present")
    pl.set_defaults(func=pull_models)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
