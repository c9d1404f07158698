"""The observatory's web page (``GET /ui``) and what it reads: the live windows (``/ui/data``),
the audit of a profile (``POST /ui/audit``); and the same page as one self-contained HTML file
for an offline run (``report``).

The page is three static files (``static/``) drawn by their own code (SVG): no build step, no
CDN, nothing fetched from elsewhere; its Content-Security-Policy allows this origin alone. With
API keys set, every path here needs one (``app.ApiKeys``): a browser gives it as the password
of the Basic authentication the page asks for.
"""
from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from harmo.protocol import ScoreRequest

from . import audit
from .models.batcher import QueueFull
from .models.registry import ModelNotReady

STATIC = Path(__file__).resolve().parent / "static"
PATHS = {"/ui", "/ui/app.js", "/ui/app.css", "/ui/data", "/ui/audit"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
# In the page, the two lines that load the style and the script; the offline report puts the
# files themselves there.
_STYLE = '<link rel="stylesheet" href="/ui/app.css">'
_SCRIPT = '<script src="/ui/app.js"></script>'


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None: browsers' JSON.parse takes no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def page_data(pipeline: Any, inspect: int) -> dict[str, Any]:
    """What ``/ui/data`` answers: the profiles, the observatory's windows and alerts, and the
    inspector's latest items."""
    obs = pipeline.observatory
    profiles = pipeline.profiles
    return finite({
        "mode": "live", "default_profile": profiles.default, "profiles": sorted(profiles.profiles),
        "observatory": obs.snapshot() if obs is not None else None,
        "inspected": obs.inspected(inspect) if obs is not None and obs.inspect else None})


def _json(body: Any) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json", headers=HEADERS)


def add_routes(app: FastAPI, pipeline_of: Callable[[], Any]) -> None:
    files = {name: (STATIC / name).read_bytes() for name in ("index.html", "app.js", "app.css")}
    auditing = asyncio.Lock()  # one audit at a time: each is a few hundred items

    @app.get("/ui", include_in_schema=False)
    async def page() -> Response:
        return Response(files["index.html"], media_type="text/html; charset=utf-8", headers=HEADERS)

    @app.get("/ui/app.js", include_in_schema=False)
    async def script() -> Response:
        return Response(files["app.js"], media_type="text/javascript; charset=utf-8", headers=HEADERS)

    @app.get("/ui/app.css", include_in_schema=False)
    async def style() -> Response:
        return Response(files["app.css"], media_type="text/css; charset=utf-8", headers=HEADERS)

    @app.get("/ui/data", include_in_schema=False)
    async def data(inspect: int = Query(50, ge=0, le=1000)) -> Response:
        # summaries of up to 2 × window items per series: CPU work, off the event loop
        return _json(await run_in_threadpool(page_data, pipeline_of(), inspect))

    @app.post("/ui/audit", include_in_schema=False)
    async def run_audit(profile: str | None = None) -> Response:
        pipeline = pipeline_of()
        name = profile or pipeline.profiles.default
        if name not in pipeline.profiles.profiles:
            raise HTTPException(422, f"unknown profile {name!r}; known: {sorted(pipeline.profiles.profiles)}")
        request = ScoreRequest.model_validate({"profile": name, "items": audit.probe_items(), "cache": False})

        def scored() -> dict[str, dict[str, Any]]:
            # the probes are not traffic: kept out of the observatory's windows and alerts
            out = pipeline.score(request, observe=False)
            return {r.id: r.model_dump(mode="json") for r in out.results}

        async with auditing:
            try:
                results = await run_in_threadpool(scored)
            except (QueueFull, ModelNotReady) as exc:
                raise HTTPException(503, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after_s)))}) \
                    from None
        rows = audit.run_audit(results)
        return _json(finite({"profile": name, "rows": rows,
                             "failed": sum(1 for r in rows if r["must_not_pay"] and r["paid"])}))


def report(data: dict[str, Any], title: str = "harmo reward report") -> str:
    """One self-contained HTML file of the page over ``data`` (an offline run's windows): the
    style and the script inline, the data in a JSON script element, nothing fetched."""
    html = (STATIC / "index.html").read_text()
    css = (STATIC / "app.css").read_text()
    js = (STATIC / "app.js").read_text()
    # "</" inside a script element would end it: JSON escapes it as "<\/", which reads the same
    payload = json.dumps(finite({"mode": "report", **data}), ensure_ascii=False).replace("</", "<\\/")
    html = html.replace("<title>harmo reward observatory</title>", f"<title>{_escape(title)}</title>")
    html = html.replace(_STYLE, f"<style>\n{css}\n</style>")
    js = js.replace("</script", "<\\/script")
    return html.replace(_SCRIPT, f'<script type="application/json" id="harmo-data">{payload}</script>\n'
                                 f"<script>\n{js}\n</script>")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
