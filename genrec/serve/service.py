"""The HTTP service and its web page: ``python generate_playlist.py --serve [--host H] [--port P] [--model PATH]``.

Built on FastAPI, run by uvicorn; the bundle is loaded once, before the service starts (:func:`create_app` takes the
loaded generator).

- ``GET /``: the web page (``page.html`` beside this file: plain HTML and a little JavaScript, no external files).
- ``POST /playlist``: a JSON object ``{"title", "num_songs", "exclude", "seeds", "max_per_artist", "system", "sample",
  "temperature", "top_p", "seed", "format"}``; only ``title`` is required, an absent option takes the service's
  default (the bundle's settings and the command line's). ``format`` ``json`` (default) answers
  :meth:`Playlist.to_dict`; ``jspf``, ``m3u8`` or ``csv`` answer the exported file (genrec.serve.exports) with its
  media type and a ``Content-Disposition`` attachment name.
- ``GET /health``: status, bundle folder, systems, default system, catalogue size, the default number of songs.
- ``GET /docs`` and ``GET /openapi.json``: the framework's API page (Swagger UI, and ReDoc at ``/redoc``, served from
  the fastapi-offline package's copies, since the service may be offline) and schema.

Every refusal is ``{"detail": "<one line>"}``: 400 for a body that is not JSON, 413 for a body over
:data:`MAX_BODY_BYTES` (counted while reading, before parsing, whatever Content-Length says), 422 for a field of
the wrong type or value (types are checked here, strictly: ``"5"`` is not a number; bounds and names by the
generator's own checks, ``check_options`` and ``clean_titles``), 503 when a playlist takes longer than
:data:`REQUEST_SECONDS`. Playlists are generated one at a time in a worker thread (the seed is torch's global
one); a request that times out gets its 503 at once while its generation, if it started, ends in the background.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

try:  # the API pages with their scripts served by the service itself
    from fastapi_offline import FastAPIOffline as new_fastapi
except ImportError:  # the framework's own pages, which load their scripts from a CDN
    new_fastapi = FastAPI

from genrec.errors import GenrecError
from genrec.serve.exports import FORMATS, MEDIA_TYPES, export
from genrec.serve.generator import MAX_SONGS, PlaylistGenerator, file_stem

log = logging.getLogger("genrec.service")

MAX_BODY_BYTES = 64 * 1024
"""The largest request body read (a title and a few thousand excluded song ids fit); larger ones get 413."""
REQUEST_SECONDS = 30.0
"""The longest a request waits for its playlist (queueing included) before it gets 503."""
MAX_CONNECTIONS = 256
"""Connections uvicorn serves at once; beyond them it answers 503 at once."""
PAGE = Path(__file__).with_name("page.html")
GENERATE_LOCK = threading.Lock()
"""One generation at a time in this process: the generator seeds torch's global random generator."""


class PlaylistRequest(BaseModel):
    """What POST /playlist reads. Types only: the generator checks ranges and names (one place for the rules)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    title: str = Field(description="The playlist's title or mood, up to 500 characters.",
                       examples=["late night drive", "夏日海边"])
    num_songs: int | None = Field(None, description=f"Songs in the playlist, 1 to {MAX_SONGS}.")
    exclude: list[str] | None = Field(None, description="Song ids never to recommend.")
    seeds: list[str] | None = Field(None, description="Songs the playlist continues (song ids or 'song - artist'); "
                                                       "never recommended back. An unknown seed gets a 422.",
                                    examples=[["One Dance - Drake"]])
    max_per_artist: int | None = Field(None, description="At most this many songs per artist (0: no cap).")
    system: str | None = Field(None, description="model, hybrid, retrieved or knn (GET /health lists the bundle's).")
    sample: bool | None = Field(None, description="Sample instead of beam search: another seed, another playlist.")
    temperature: float | None = Field(None, description="Sampling temperature, above 0 and at most 10.")
    top_p: float | None = Field(None, description="Nucleus sampling mass, above 0 and at most 1.")
    seed: int | None = Field(None, description="The random seed (sampling).")
    format: Literal[FORMATS] = Field("json", description="json: the playlist as JSON; jspf, m3u8, csv: a file.")


class TimedOut(Exception):
    pass


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def refusal(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": one_line(detail)}, status_code=status)


def shown(value) -> str:
    """A client's value inside a message: short, and printable whatever it holds."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validation_detail(errors: list[dict]) -> tuple[int, str]:
    """FastAPI's list of validation errors as a status and one line naming the field (the first error, and how many
    more there are)."""
    first = errors[0]
    kind, loc = first.get("type", ""), [str(part) for part in first.get("loc", ())]
    if kind == "json_invalid":
        error = first.get("ctx", {}).get("error", "not JSON")
        at = f" (character {loc[1]})" if len(loc) > 1 else ""
        return 400, f"the request body is not valid JSON: {error.removesuffix(' at')}{at}"
    field = ".".join(loc[1:] if loc[:1] == ["body"] else loc)
    if not field:
        if kind == "missing":
            return 422, 'the request body must be a JSON object such as {"title": "late night drive"}'
        return 422, ('the request body must be a JSON object such as {"title": "late night drive"} '
                     '(sent as Content-Type: application/json)')
    if kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "is not an option; options: " + ", ".join(PlaylistRequest.model_fields)
    else:
        message = f"{first.get('msg', 'is invalid')[:1].lower()}{first.get('msg', 'is invalid')[1:]}"
        if "input" in first and kind != "missing":
            message += f" (got {shown(first['input'])})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return 422, f"{field}: {message}{more}"


class BodyLimit:
    """ASGI middleware: read a request's whole body, at most ``limit`` bytes, before the app sees any of it; a larger
    one (declared by Content-Length or found while reading) gets 413."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self.too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self.too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # waits for the client to leave, as the server's own receive does
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def too_large(self, scope, receive, send):
        await refusal(413, f"the request body is over {self.limit} bytes")(scope, receive, send)


class Worker:
    """Generates playlists one at a time in a thread, each within ``time_limit`` seconds of its request."""

    def __init__(self, generator: PlaylistGenerator, time_limit: float):
        self.generator, self.time_limit = generator, time_limit
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")

    def run(self, deadline: float, title: str, options: dict):
        with GENERATE_LOCK:
            if time.monotonic() > deadline:  # its client has had its 503 already: skip the work
                raise TimedOut
            return self.generator.generate(title, **options)

    async def generate(self, title: str, options: dict):
        deadline = time.monotonic() + self.time_limit
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.run, deadline, title, options)
        # A timed-out request's future ends later; read its outcome so that asyncio does not report it as lost.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.time_limit)
        except (asyncio.TimeoutError, TimedOut):
            raise TimedOut from None


def attachment(title: str, fmt: str) -> str:
    """A Content-Disposition naming the file after the title (RFC 6266: an ASCII name, and the UTF-8 one)."""
    stem = file_stem(title)
    ascii_stem = "-".join("".join(ch if ch.isascii() and ch.isalnum() else " " for ch in stem).split()) or "playlist"
    return f"attachment; filename=\"{ascii_stem}.{fmt}\"; filename*=UTF-8''{quote(f'{stem}.{fmt}', safe='')}"


def create_app(generator: PlaylistGenerator, time_limit: float = REQUEST_SECONDS,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The service over a loaded generator (its ``options`` are the defaults of every request)."""
    app = new_fastapi(title="generate_playlist", version="1",
                      description="Playlists of real songs from a title. The web page is at [/](/).")
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    worker = Worker(generator, time_limit)
    page = PAGE.read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        return refusal(*validation_detail(list(err.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        return refusal(err.status_code, str(err.detail))

    @app.exception_handler(GenrecError)
    async def refused(request: Request, err: GenrecError):
        return refusal(422, str(err))

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return refusal(500, f"internal error ({type(err).__name__}); the service's log has the details")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return HTMLResponse(page)

    @app.get("/health")
    def health() -> dict:
        """The service is up; what the loaded bundle serves."""
        return {"status": "ok", "bundle": str(generator.folder), "systems": list(generator.systems),
                "default_system": generator.options.system or generator.default_system,
                "catalogue_songs": len(generator.names), "num_songs": generator.options.num_songs,
                "max_songs": MAX_SONGS}

    @app.post("/playlist", responses={
        200: {"description": "The playlist: JSON, or the file asked for by ``format``.",
              "content": {MEDIA_TYPES[f]: {} for f in FORMATS if f != "json"}},
        400: {"description": "The body is not JSON."}, 413: {"description": "The body is too large."},
        422: {"description": "A field has the wrong type or value; ``detail`` names it."},
        503: {"description": "The playlist took too long."}})
    async def playlist(body: PlaylistRequest):
        """A playlist of ``num_songs`` distinct songs for ``title`` (songs, artists, scores, and the system that
        placed each)."""
        options = body.model_dump(exclude_none=True, exclude={"title", "format"})
        title = body.title
        try:
            title.encode("utf-8")
        except UnicodeEncodeError:
            return refusal(422, "title: is not valid Unicode text (it holds a lone surrogate escape)")
        try:
            made = await worker.generate(title, options)
        except TimedOut:
            return refusal(503, f"the playlist took longer than {time_limit:g} s; try again later or ask for "
                                "fewer songs / 生成超时")
        if body.format == "json":
            return made.to_dict()
        return Response(export(made, body.format), media_type=f"{MEDIA_TYPES[body.format]}; charset=utf-8",
                        headers={"Content-Disposition": attachment(made.title, body.format)})

    return app


def serve(generator: PlaylistGenerator, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``generator`` at http://host:port until interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn

    app = create_app(generator)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    log.info("serving %s (%s; default %s, %d songs): the page at %s/, the API at %s/docs", generator.folder,
             ", ".join(generator.systems), generator.options.system or generator.default_system, len(generator.names),
             where, where)
    # log_config=None: uvicorn's lines go to the script's own logging (the console and logs/generate_playlist.log).
    uvicorn.run(app, host=host, port=port, log_config=None, limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=5)
