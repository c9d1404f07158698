"""The HTTP layer: a thin FastAPI app over ``ScoringPipeline``."""
from __future__ import annotations

import asyncio
import base64
import binascii
import ctypes
import gc
import hmac
import json
import logging
import threading
import time
import zlib
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from harmo.protocol import (
    OpenRLHFRequest,
    OpenRLHFResponse,
    ProfileInfo,
    ProfilesResponse,
    ScoreRequest,
    ScoreResponse,
    SlimeRequest,
    SlimeResponse,
)

from . import logs, metrics, openrlhf, slime, ui
from .limits import images_of
from .models.batcher import QueueFull
from .models.registry import ModelNotReady
from .pipeline import BadItem, Pending, ScoringPipeline, UnknownProfile
from .rewards.registry import tasks
from .settings import Settings


def check_limits(req: ScoreRequest, s: Settings) -> None:
    """413 for a request with too many items, 422 for a malformed data URI. Per-item sizes are
    the pipeline's (``limits.py``): a typed error for that item, the rest scored."""
    if len(req.items) > s.max_items_per_request:
        raise HTTPException(413, f"{len(req.items)} items in one request; the limit is {s.max_items_per_request}")
    for i, item in enumerate(req.items):
        for ref in images_of(item):
            if ref.startswith("data:") and "," not in ref:
                raise HTTPException(422, f"items[{i}]: an image is neither a URL nor a base64 data URI")


class BodyLimit:
    """413 for a body past the limit: a declared one before it is read, and any body (chunked
    uploads declare no length) as soon as the bytes read pass it. A gzip or deflate body
    (``Content-Encoding``) is decoded as it is read, under the same limit on its decoded size;
    any other encoding is 415. A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs
    every request an extra task and stream."""

    DECODERS = {b"gzip": 16 + zlib.MAX_WBITS, b"x-gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, scope, receive, send, size: str) -> None:
        body = {"detail": f"request body of {size} bytes; the limit is {self.limit}"}
        await JSONResponse(body, status_code=413)(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = b""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(scope, receive, send, value.decode())
                return
            if name == b"content-encoding":
                encoding = value.strip().lower()
        decoder = None
        if encoding not in (b"", b"identity"):
            if encoding not in self.DECODERS:
                await JSONResponse({"detail": f"Content-Encoding {encoding.decode('latin-1')!r} is not supported; "
                                              "send the body plain, gzip or deflate"}, status_code=415)(
                    scope, receive, send)
                return
            decoder = zlib.decompressobj(self.DECODERS[encoding])
            # the app reads the decoded body: its declared length no longer applies
            scope["headers"] = [(k, v) for k, v in scope["headers"]
                                if k not in (b"content-length", b"content-encoding")]
        seen, refused = 0, False

        async def counted():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if decoder is not None:
                    try:
                        # at most one byte past the limit per chunk: a small bomb cannot expand here
                        body = decoder.decompress(body, self.limit - seen + 1)
                        if decoder.unconsumed_tail:
                            body += b"?"  # more than the limit is in there
                    except zlib.error as exc:
                        refused = True
                        await JSONResponse({"detail": f"the body is not valid {encoding.decode()}: {exc}"},
                                           status_code=400)(scope, receive, send)
                        return {"type": "http.disconnect"}
                    message = {**message, "body": body}
                seen += len(body)
                if seen > self.limit:
                    # Answer now (the app has not: it reads the whole body first), then tell the
                    # app the client is gone, so that it stops reading and its own answer is dropped.
                    refused = True
                    await self._refuse(scope, receive, send, f"more than {self.limit}")
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message):
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise


class RequestContext:
    """Request id (the client's ``X-Request-ID`` or a new one, echoed in the response), request
    metrics by endpoint, profile and status, and one access log line per request."""

    ENDPOINTS = {"/score", "/get_reward", "/slime/reward", "/healthz", "/readyz", "/metrics", "/v1/profiles", "/docs",
                 "/openapi.json", *ui.PATHS}
    QUIET = {"/healthz", "/readyz", "/metrics", "/ui/data"}  # probes, scrapes, the page's polls: counted, not logged

    def __init__(self, app) -> None:
        self.app = app
        self.log = logging.getLogger("harmo.access")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = logs.request_id_from(headers.get(b"x-request-id", b"").decode("latin-1") or None)
        token = logs.REQUEST_ID.set(rid)
        scope["harmo"] = info = {"profile": "", "items": 0}
        status = 500
        started = False
        t = time.perf_counter()

        async def send_with_id(message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # noqa: BLE001 - logged here, where the request id is still known
            logging.getLogger("harmo.server").exception("unhandled error on %s", scope["path"])
            if not started:
                await JSONResponse({"detail": f"internal error; request id {rid}"}, status_code=500)(
                    scope, receive, send_with_id)
        finally:
            dt = time.perf_counter() - t
            path = scope["path"]
            endpoint = path if path in self.ENDPOINTS else "other"
            metrics.REQUESTS.labels(endpoint=endpoint, profile=info["profile"], status=str(status)).inc()
            metrics.REQUEST_LATENCY.labels(endpoint=endpoint).observe(dt)
            if endpoint not in self.QUIET or status >= 400:
                self.log.info("request", extra={"method": scope["method"], "path": path, "status": status,
                                                "duration_ms": round(dt * 1000, 2), "items": info["items"],
                                                "profile": info["profile"]})
            logs.REQUEST_ID.reset(token)


class ApiKeys:
    """With keys configured, the scoring endpoints and the observatory (``/ui``: its inspector
    shows prompts and responses) need one; probes, metrics and docs stay open. A browser gives
    the key as the password of HTTP Basic authentication, which ``/ui`` asks it for."""

    OPEN = {"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/v1/profiles"}

    def __init__(self, app, keys: frozenset[str]) -> None:
        self.app = app
        self.keys = keys

    @staticmethod
    def key_of(headers: dict[bytes, bytes]) -> bytes:
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            return auth[7:].strip()
        if auth[:6].lower() == b"basic ":
            try:
                return base64.b64decode(auth[6:].strip(), validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return b""
        return headers.get(b"x-api-key", b"")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.keys and scope["path"] not in self.OPEN:
            key = self.key_of(dict(scope["headers"]))
            # bytes: compare_digest refuses non-ASCII str, and a header may hold anything
            if not any(hmac.compare_digest(key, k.encode()) for k in self.keys):
                page = scope["path"] == "/ui" or scope["path"].startswith("/ui/")  # a browser's: it asks the user
                challenge = 'Basic realm="harmo reward server", charset="UTF-8"' if page else "Bearer"
                await JSONResponse({"detail": "a valid API key is needed (Authorization: Bearer KEY; in a browser, "
                                              "the key as the password)"},
                                   status_code=401, headers={"WWW-Authenticate": challenge})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _echo(value: Any, limit: int = 200) -> str | None:
    """A value from the request as a 422 may show it: its repr, cut short, ASCII only."""
    if value is None:
        return None
    text = ascii(value) if not isinstance(value, (dict, list)) or len(value) < 20 else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


M = TypeVar("M", bound=BaseModel)
# A body up to this size is read and its answer written on the event loop (tens of microseconds:
# a trip to a thread costs more); a larger one in the thread pool, so the loop never stalls on it.
SMALL_BODY = 256 * 1024
BIG_REQUEST = 64  # items: past this, a request is scored with at most one other such at a time


def _this_server(schema: dict[str, Any], profiles: dict[str, Any], settings: Settings) -> None:
    """What this server takes, in its schema: its profiles, its verifiers' task names, its item
    limit. A request the schema allows is then one the server takes."""
    defs = schema["components"]["schemas"]
    names = sorted(profiles)
    defs["ScoreItem"]["properties"]["task"] = {**defs["ScoreItem"]["properties"]["task"], "enum": sorted(tasks())}
    defs["ScoreItem"]["properties"]["task"].pop("pattern", None)
    defs["ScoreRequest"]["properties"]["profile"] = {"anyOf": [{"type": "string", "enum": names}, {"type": "null"}],
                                                     "default": None, "description": "a profile of this server"}
    defs["ScoreRequest"]["properties"]["items"]["maxItems"] = settings.max_items_per_request
    for path in ("/get_reward", "/slime/reward"):
        for param in schema["paths"][path]["post"].get("parameters", []):
            if param["name"] == "profile":
                param["schema"] = {"anyOf": [{"type": "string", "enum": names}, {"type": "null"}]}


def parse_body(model: type[M], body: bytes) -> M:
    """A request body as ``model``, as FastAPI would read it (the same 400s and 422s), but called
    by the endpoint itself, so that a large body is read in the thread pool: reading and
    validating hundreds of MB takes seconds of CPU that the event loop must not spend."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the body is not UTF-8 (byte {exc.start}); JSON requests are UTF-8") from None
    except RecursionError:
        raise HTTPException(400, "the body's JSON nests too deep to read") from None
    except json.JSONDecodeError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": exc.msg}}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    except RecursionError:
        raise HTTPException(400, "the body's JSON nests too deep to read") from None


class _Trim:
    """Gives the memory of a big request back to the system after it (glibc keeps freed heap
    otherwise: hundreds of MB after one large body), at most once a second."""

    BIG = 16 * 2**20

    def __init__(self) -> None:
        try:
            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc: nothing to do
            self._trim = None
        self._lock = threading.Lock()
        self._last = 0.0

    def after(self, size: int) -> None:
        if self._trim is None or size < self.BIG or not self._lock.acquire(blocking=False):
            return
        try:
            if time.monotonic() - self._last >= 1.0:
                self._trim(0)
                self._last = time.monotonic()
        finally:
            self._lock.release()


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that reads its own body (``parse_body``)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


# What every scoring endpoint may answer besides its 200, each with its cause.
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not UTF-8, not valid gzip/deflate, or its JSON nests too deep to read"},
    401: {"description": "API keys are configured and the request has no valid one"},
    408: {"description": "the request's head or body did not arrive in time (the connection is closed)"},
    413: {"description": "the body, or the number of items, is past a configured limit"},
    415: {"description": "a Content-Encoding other than gzip or deflate"},
    422: {"description": "a malformed request: the field and the reason"},
    431: {"description": "the request line and headers are past the configured limit"},
}


def _check_sandbox(pipeline: ScoringPipeline) -> None:
    """Say at start-up, once, whether code items can run here (asked of a rule worker, where they
    run): without a sandbox they are unjudged (accuracy/sandbox_unavailable), never run elsewhere."""
    from . import sandbox
    from .workers import CodeJob

    try:
        why = pipeline.rule_pool.submit(CodeJob([(sandbox.status, "", [], {})]))[0].result(120)
    except Exception as exc:  # noqa: BLE001 - a check, not a dependency
        why = f"{type(exc).__name__}: {exc}"
    log = logging.getLogger("harmo.server")
    if why:
        log.warning("code items cannot run here and will be unjudged: %s", why)
    else:
        log.info("code sandbox (bubblewrap) ready")


def create_app(settings: Settings | None = None, pipeline: ScoringPipeline | None = None) -> FastAPI:
    settings = settings or Settings()
    state: dict[str, ScoringPipeline] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        # Each scoring request holds a thread while it waits on math workers and model
        # batchers; the thread pool bounds how many are in flight.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.http_threads
        state["pipeline"] = pipeline or ScoringPipeline(settings)
        if state["pipeline"].observatory is not None:
            state["pipeline"].observatory.watch(settings.alert_every_s)
        threading.Thread(target=_check_sandbox, args=(state["pipeline"],), name="sandbox-check", daemon=True).start()
        # What start-up built (modules, profiles, models loaded so far) lives as long as the
        # process: out of the collector's reach, a full collection walks only what requests made,
        # so it never stalls every thread for a second on a large heap.
        gc.freeze()
        try:
            yield
        finally:
            if pipeline is None:
                state["pipeline"].close()

    # FastAPI's OpenTelemetry hooks look the providers up on every request: the server's metrics
    # are Prometheus's (/metrics), so they are off.
    app = FastAPI(title="harmo reward server", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="Hybrid, multi-aspect rewards for RL alignment of (multimodal) language models.")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # The errors echo the offending input: a non-finite number, a lone surrogate, a huge
        # value. Each is shown as a short, safely encodable repr, so the 422 itself never fails.
        errors = [{"loc": [x if isinstance(x, int) else str(x) for x in e.get("loc", ())],
                   "msg": str(e.get("msg", "")), "type": e.get("type"), "input": _echo(e.get("input"))}
                  for e in exc.errors()[:50]]
        # ASCII JSON: a lone surrogate in a message is escaped, never an encoding error
        return Response(json.dumps({"detail": errors}, ensure_ascii=True), status_code=422,
                        media_type="application/json")

    def openapi() -> dict[str, Any]:
        # The scoring endpoints read their own bodies (off the event loop): their request
        # schemas are added here, where FastAPI would have put them.
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            defs = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (ScoreRequest, OpenRLHFRequest):
                own = model.model_json_schema(ref_template="#/components/schemas/{model}")
                defs.update(own.pop("$defs", {}))
                defs[model.__name__] = own
            _this_server(schema, state["pipeline"].profiles.profiles, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    trim = _Trim()
    big_requests = asyncio.Semaphore(2)

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(ApiKeys, keys=settings.keys())
    app.add_middleware(RequestContext)  # outermost: sees every response, 413s included

    # The probes run on the event loop (quick reads of counters): they never wait for a thread
    # behind the scoring requests.
    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **state["pipeline"].health()}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        models = state["pipeline"].models
        ready = models.ready()
        return JSONResponse({"ready": ready, "models": models.status()}, status_code=200 if ready else 503)

    @app.get("/v1/profiles", response_model=ProfilesResponse)
    def profiles() -> ProfilesResponse:
        ps = state["pipeline"].profiles
        return ProfilesResponse(default=ps.default, profiles=[
            ProfileInfo(name=n, version=p.version, description=p.description.strip(), weights=p.weights,
                        formula=p.formula, data_sources=p.data_sources, models=ps.roles(n),
                        unjudged=str(p.accuracy.unjudged))
            for n, p in ps.profiles.items()
        ])

    @app.post("/score", response_model=ScoreResponse, openapi_extra=_body(ScoreRequest), responses={
        **_ERRORS, 503: {"description": "a model is saturated, loading, or cannot serve the request in its "
                                        "timeout; see Retry-After"}})
    async def score(request: Request) -> Response:
        body = await request.body()
        small = len(body) <= SMALL_BODY
        try:
            req = parse_body(ScoreRequest, body) if small else await run_in_threadpool(parse_body, ScoreRequest, body)
            out = await _scored(req, request)
            del req
            dump = out.model_dump_json() if small else await run_in_threadpool(out.model_dump_json)
            return Response(dump, media_type="application/json")
        finally:
            if not small:
                await run_in_threadpool(trim.after, len(body))

    async def _scored(req: ScoreRequest, request: Request) -> ScoreResponse:
        # Scoring runs in the thread pool, never on the event loop (one hop per request: a rule
        # may wait on its worker, a model on its batcher); a request whose groups wait for
        # members from other requests waits here, on the loop, holding no thread.
        info = request.scope["harmo"]
        info["items"] = len(req.items)
        check_limits(req, settings)
        pipeline = state["pipeline"]

        def run() -> tuple[Pending, ScoreResponse | None]:
            pending = pipeline.begin(req)
            return pending, None if pending.groups else pipeline.finish(pending)

        try:
            if len(req.items) > BIG_REQUEST:
                # A large request is CPU-bound work that batches within itself: a few at a time
                # score as fast as many, and leave the event loop its share of the GIL.
                async with big_requests:
                    pending, out = await run_in_threadpool(run)
            else:
                pending, out = await run_in_threadpool(run)
        except (UnknownProfile, BadItem) as exc:
            raise HTTPException(422, str(exc)) from None
        except (QueueFull, ModelNotReady) as exc:
            # Back-pressure: the caller retries; nothing queues without bound.
            raise HTTPException(503, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after_s)))}) from None
        if out is None:
            await pending.wait_async()
            # a few items' results are microseconds of work: no second trip to a thread for them
            out = pipeline.finish(pending) if len(pending.items) <= 64 else \
                await run_in_threadpool(pipeline.finish, pending)
        info["profile"] = out.profile  # a configured name (or "mixed"): bounded label values
        return out

    async def _contract_request(request: Request, profile: str | None,
                                model: type[M]) -> tuple[ScoringPipeline, str, M]:
        """A trainer contract's request (``/get_reward``, ``/slime/reward``): the pipeline, the
        profile's name (the server's default when none is asked for; 422 for an unknown one) and
        the body as ``model`` (a large one parsed in the thread pool)."""
        pipeline: ScoringPipeline = state["pipeline"]
        name = profile or pipeline.profiles.default
        if name not in pipeline.profiles.profiles:
            raise HTTPException(422, f"unknown profile {name!r}; known: {sorted(pipeline.profiles.profiles)}")
        body = await request.body()
        req = parse_body(model, body) if len(body) <= SMALL_BODY else await run_in_threadpool(parse_body, model, body)
        return pipeline, name, req

    @app.post("/get_reward", response_model=OpenRLHFResponse, openapi_extra=_body(OpenRLHFRequest), responses={
        **_ERRORS, 422: {"description": "a malformed request (a well-formed one is always answered 200)"},
        503: {"description": "a model is saturated or loading; see Retry-After"}})
    async def get_reward(request: Request, profile: str | None = None,
                         group_size: int | None = Query(None, ge=1, le=4096)) -> Response:
        """OpenRLHF's remote reward API. The responses to one prompt form a GRPO group: within the
        request, or, with a group size (``?group_size=N``, the body's ``group_size`` or
        ``HARMO_OPENRLHF_GROUP_SIZE``: OpenRLHF's ``n_samples_per_prompt``), across requests."""
        pipeline, name, req = await _contract_request(request, profile, OpenRLHFRequest)
        n = group_size or req.group_size or settings.openrlhf_group_size
        score_req = await run_in_threadpool(openrlhf.to_request, req, name, n, pipeline.seat,
                                            settings.openrlhf_stop_tokens)
        out = await _scored(score_req, request)
        body = openrlhf.to_response(out, pipeline.profiles.get(name))
        return Response(body.model_dump_json(), media_type="application/json")

    @app.post("/slime/reward", response_model=SlimeResponse, openapi_extra=_body(SlimeRequest), responses={
        **_ERRORS, 422: {"description": "a malformed request (a well-formed one is always answered 200)"},
        503: {"description": "a model is saturated or loading; see Retry-After"}})
    async def slime_reward(request: Request, profile: str | None = None,
                           group_size: int | None = Query(None, ge=1, le=4096)) -> Response:
        """slime's remote reward (``--rm-type remote_rm --rm-url URL --reward-key reward``): one
        sample; with ``?group_size=N`` (slime's ``--n-samples-per-prompt``) a prompt's samples,
        sent alone, form its GRPO groups."""
        pipeline, name, req = await _contract_request(request, profile, SlimeRequest)
        try:
            score_req = slime.to_request(req, name, group_size)
        except ValueError as exc:  # a sample no item can hold
            raise HTTPException(422, str(exc)) from None
        out = await _scored(score_req, request)
        return Response(slime.to_response(out, pipeline.profiles.get(name)).model_dump_json(),
                        media_type="application/json")

    ui.add_routes(app, lambda: state["pipeline"])
    return app
