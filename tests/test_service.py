"""The HTTP service and its web page: the API through FastAPI's TestClient (health, playlists, every export format,
one-line refusals of bad requests after which it still serves, the body and time limits), ``generate_playlist.py
--serve`` answering over a socket, and the page in a real headless browser (Debian's chromium driven by Playwright)
showing the API's songs. One tiny pipeline run builds the bundle every test here uses."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.service import stop_service
from conftest import REPO
from genrec.serve.service import MAX_BODY_BYTES, create_app

# A retrieval model, so that all four systems exist (as tests/test_serving.py builds it).
TITLE = "late night drive"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


@pytest.fixture(scope="module")
def bundle(tiny_pipeline) -> Path:
    return tiny_pipeline / "models" / "bundle"


@pytest.fixture(scope="module")
def generator(bundle):
    from genrec import PlaylistGenerator
    return PlaylistGenerator.load(bundle)


@pytest.fixture(scope="module")
def client(generator):
    return TestClient(create_app(generator))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ids(answer: dict) -> list[str]:
    return [song["song_id"] for song in answer["songs"]]


def assert_serves(client, title: str = TITLE, num_songs: int = 5) -> dict:
    response = client.post("/playlist", json={"title": title, "num_songs": num_songs})
    assert response.status_code == 200, response.text
    assert len(set(ids(response.json()))) == num_songs
    return response.json()


def test_health_names_the_bundle_and_its_systems(client, generator, bundle):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["bundle"] == str(bundle)
    assert health["systems"] == list(generator.systems) and set(health["systems"]) == {"model", "hybrid", "retrieved",
                                                                                        "knn"}
    assert health["default_system"] == generator.default_system
    assert health["catalogue_songs"] == len(generator.names) > 0


@pytest.mark.parametrize("system", ["", "model", "hybrid"])
def test_a_playlist_is_the_songs_asked_as_the_python_api_gives_them(client, generator, system):
    request = {"title": "夏日海边 🌊", "num_songs": 7, "exclude": [next(iter(generator.names))], "max_per_artist": 3,
               "sample": True, "seed": 3, **({"system": system} if system else {})}
    response = client.post("/playlist", json=request)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["title"] == "夏日海边 🌊" and answer["system"] == (system or generator.default_system)
    assert len(set(ids(answer))) == 7 and request["exclude"][0] not in ids(answer)
    assert all(isinstance(song["score"], float) and song["system"] and song["name"] for song in answer["songs"])
    expected = generator.generate(**request).to_dict()
    assert answer == json.loads(json.dumps(expected))


def test_seeds_are_continued_and_an_unknown_seed_is_a_422_naming_it(client, generator):
    seeds = list(generator.names)[:2]
    response = client.post("/playlist", json={"title": TITLE, "num_songs": 8, "seeds": seeds})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(set(ids(answer))) == 8 and not set(seeds) & set(ids(answer))
    assert answer["system"] == generator.seeded.system
    assert_one_line_refusal(client.post("/playlist", json={"title": TITLE, "seeds": [seeds[0], "nope - nobody"]}),
                            "seed 'nope - nobody'", 422)
    assert_one_line_refusal(client.post("/playlist", json={"title": TITLE, "seeds": "one song"}), "seeds", 422)


@pytest.mark.parametrize("fmt, media_type", [("jspf", "application/jspf+json"), ("m3u8", "audio/x-mpegurl"),
                                             ("csv", "text/csv"), ("json", "application/json")])
def test_each_export_format_through_the_api(client, fmt, media_type):
    response = client.post("/playlist", json={"title": "夏日海边", "num_songs": 6, "format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media_type
    text = response.content.decode("utf-8")
    if fmt == "json":
        assert len(json.loads(text)["songs"]) == 6
        return
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"filename*=UTF-8''%E5%A4%8F%E6%97%A5%E6%B5%B7%E8%BE%B9.{fmt}" \
        in disposition and f'filename="playlist.{fmt}"' in disposition
    if fmt == "jspf":
        document = json.loads(text)["playlist"]
        assert document["title"] == "夏日海边" and len(document["track"]) == 6
    elif fmt == "m3u8":
        lines = text.splitlines()
        assert lines[:2] == ["#EXTM3U", "#PLAYLIST:夏日海边"] and len(lines) == 2 + 2 * 6
        assert all(line.startswith("#EXTINF:") for line in lines[2::2])
    else:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
        assert rows[0] == ["rank", "song_id", "name", "artist", "score", "system"] and len(rows) == 7


BAD_REQUESTS = [
    ({"title": ""}, "title"),
    ({"title": "x" * 10_000}, "title"),
    ({"title": ["late night drive"]}, "title"),
    ({"title": None}, "title"),
    ({}, "title"),
    ({"title": TITLE, "num_songs": 0}, "num_songs"),
    ({"title": TITLE, "num_songs": 10 ** 9}, "num_songs"),
    ({"title": TITLE, "num_songs": "abc"}, "num_songs"),
    ({"title": TITLE, "num_songs": "5"}, "num_songs"),
    ({"title": TITLE, "num_songs": 2.5}, "num_songs"),
    ({"title": TITLE, "system": "bogus"}, "system"),
    ({"title": TITLE, "exclude": ["no-such-song"]}, "exclude"),
    ({"title": TITLE, "exclude": "no-such-song"}, "exclude"),
    ({"title": TITLE, "exclude": [3]}, "exclude"),
    ({"title": TITLE, "max_per_artist": -1}, "max_per_artist"),
    ({"title": TITLE, "temperature": 0}, "temperature"),
    ({"title": TITLE, "top_p": 1.5}, "top_p"),
    ({"title": TITLE, "seed": 10 ** 20}, "seed"),
    ({"title": TITLE, "sample": "yes"}, "sample"),
    ({"title": TITLE, "format": "mp3"}, "format"),
    ({"title": TITLE, "colour": "red"}, "colour"),
    ([TITLE], "JSON object"),
]
RAW_BAD_REQUESTS = [
    (b'{"title": "late', "application/json", "JSON"),
    (b"", "application/json", "JSON object"),
    (b"\xff\xfe{}", "application/json", "JSON"),
    (b'{"title": "late night drive"}', "text/plain", "application/json"),
    (b'{"title": "\\ud800"}', "application/json", "title"),
    (b'{"title": "a", "temperature": NaN}', "application/json", "temperature"),
    (b"[" * 20_000 + b"]" * 20_000, "application/json", "body"),
]


def assert_one_line_refusal(response, mentions: str, status: int | None = None) -> None:
    assert 400 <= response.status_code < 500 and response.status_code == (status or response.status_code), \
        (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and 0 < len(detail) <= 300, detail
    assert mentions in detail, detail


@pytest.mark.parametrize("body, field", BAD_REQUESTS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_REQUESTS)])
def test_a_bad_request_gets_a_one_line_reason_naming_the_field(client, body, field):
    assert_one_line_refusal(client.post("/playlist", json=body), field)


@pytest.mark.parametrize("raw, content_type, mentions", RAW_BAD_REQUESTS)
def test_a_body_that_is_not_a_json_request_gets_a_one_line_reason(client, raw, content_type, mentions):
    response = client.post("/playlist", content=raw, headers={"Content-Type": content_type})
    assert_one_line_refusal(response, mentions)


def test_the_service_keeps_serving_after_a_batch_of_bad_requests(client):
    for body, _ in BAD_REQUESTS:
        assert client.post("/playlist", json=body).status_code < 500
    for raw, content_type, _ in RAW_BAD_REQUESTS:
        assert client.post("/playlist", content=raw, headers={"Content-Type": content_type}).status_code < 500
    assert_serves(client)


def test_an_oversize_body_is_refused_before_parsing_with_or_without_its_length(client):
    big = json.dumps({"title": TITLE, "exclude": ["x" * 100] * 1000}).encode()
    assert len(big) > MAX_BODY_BYTES
    assert_one_line_refusal(client.post("/playlist", content=big, headers={"Content-Type": "application/json"}),
                            "over", 413)
    # Streamed in chunks without a Content-Length: counted while read.
    chunks = (big[i:i + 4096] for i in range(0, len(big), 4096))
    response = client.post("/playlist", content=chunks, headers={"Content-Type": "application/json"})
    assert_one_line_refusal(response, "over", 413)
    assert_serves(client)


class Slow:
    """The generator, two seconds slower per playlist; ``finished`` is set when a playlist is done."""

    def __init__(self, generator):
        self.inner, self.finished = generator, threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, title, **options):
        time.sleep(2.0)
        playlist = self.inner.generate(title, **options)
        self.finished.set()
        return playlist


def test_a_playlist_over_the_time_limit_gets_503_and_the_service_goes_on(generator, client):
    slow = Slow(generator)
    start = time.perf_counter()
    response = TestClient(create_app(slow, time_limit=0.2)).post("/playlist", json={"title": TITLE})
    assert response.status_code == 503 and time.perf_counter() - start < 1.5
    detail = response.json()["detail"]
    assert "\n" not in detail and "longer than 0.2 s" in detail
    assert slow.finished.wait(30)  # the generation went on in the background, and ended
    assert_serves(client)


@pytest.mark.parametrize("field", ["title", "num_songs", "exclude", "max_per_artist", "system", "sample",
                                   "temperature", "top_p", "seed", "format"])
def test_no_value_of_any_field_makes_a_server_error(client, field):
    for value in (None, True, False, 0, -1, 2 ** 64, 0.5, 1e308, "", "x", "夏日", [], ["x"], [None], {}, {"a": 1}):
        response = client.post("/playlist", json={"title": TITLE, "num_songs": 3, field: value})
        assert response.status_code < 500, (field, value, response.text)
        if response.status_code != 200:
            assert_one_line_refusal(response, "")


def test_the_openapi_page_and_schema(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/playlist", "/health"} <= schema["paths"].keys()


def test_the_page_is_one_self_contained_utf8_file(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert '<meta charset="utf-8">' in page
    for external in ('src="http', "src='http", 'href="http', "href='http", "@import", "url(http"):
        assert external not in page
    for element in ('id="title"', 'id="num-songs"', 'id="system"', 'id="generate"', 'id="songs"', 'id="error"'):
        assert element in page


def test_the_script_serves_the_bundle_over_http(bundle, tmp_path):
    port = free_port()
    log = open(tmp_path / "serve.log", "w+", encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.Popen([sys.executable, str(REPO / "generate_playlist.py"), "--model", str(bundle), "--serve",
                             "--port", str(port)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the service exited {proc.returncode}: {(tmp_path / 'serve.log').read_text()}"
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not answer /health within 60 s"
                time.sleep(0.3)
        assert health.status_code == 200 and health.json()["bundle"] == str(bundle)
        assert_serves(httpx.Client(base_url=url, timeout=30), "夏日海边")
    finally:
        stop_service(proc)
        log.close()
    output = (tmp_path / "serve.log").read_text(encoding="utf-8")
    assert "Traceback" not in output and f"the page at {url}/" in output


# --- the page in a real browser ---------------------------------------------------------------------------------

def chromium_path() -> str | None:
    candidates = [os.environ.get("CHROMIUM_PATH", ""), *CHROMIUM_PATHS, shutil.which("chromium") or ""]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


@pytest.fixture(scope="module")
def live(generator):
    """The service on a free loopback port, run by uvicorn in a thread of this process."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(generator), host="127.0.0.1", port=free_port(),
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium browser: install Debian's chromium (/usr/bin/chromium) or set CHROMIUM_PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def shown_after(page, click: str) -> list[str]:
    """Click, wait for the page to draw the playlist that answers, and return the song ids it shows."""
    done = int(page.get_attribute("#songs", "data-generation"))
    page.click(click)
    page.wait_for_function(f"Number(document.querySelector('#songs').dataset.generation) > {done}", timeout=30_000)
    return page.eval_on_selector_all("#songs li", "items => items.map(li => li.dataset.songId)")


def test_the_page_shows_the_apis_playlist_and_excludes_a_song_with_one_click(browser, live, generator, tmp_path):
    api = httpx.Client(base_url=live, timeout=30)
    page = browser.new_page()
    page.goto(live + "/")
    page.wait_for_selector("#system option:checked", state="attached")
    assert page.input_value("#system") == generator.default_system
    for title, num_songs, system in ((TITLE, 6, ""), ("夏日海边 🌊", 5, "hybrid")):
        page.fill("#title", "")
        page.locator("#title").press_sequentially(title)
        page.fill("#num-songs", str(num_songs))
        if system:
            page.select_option("#system", system)
        shown = shown_after(page, "#generate")
        request = {"title": title, "num_songs": num_songs, "system": system or generator.default_system}
        assert shown == ids(api.post("/playlist", json=request).json())
        assert page.inner_text("#playlist-title") == title and page.is_hidden("#error")

    # One click excludes a song: it goes, and the list is refilled to the songs asked.
    gone = shown[1]
    after = shown_after(page, f"#songs li[data-song-id='{gone}'] .exclude")
    assert gone not in after and len(after) == num_songs == len(set(after))
    expected = ids(api.post("/playlist", json={**request, "exclude": [gone]}).json())
    assert after == expected

    # Regenerate samples another playlist for the same request (its exclusions kept).
    again = shown_after(page, "#regenerate")
    assert len(set(again)) == num_songs and gone not in again

    # A download is the file the API makes, named after the title.
    with page.expect_download() as download:
        page.click("button[data-format='m3u8']")
    assert download.value.suggested_filename == "夏日海边.m3u8"
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 2 + 2 * num_songs

    # Seeds typed in the page continue those songs, as the API's seeds field does, and never come back.
    page.fill("#seeds", f" {again[0]} ; {again[1]};")
    page.select_option("#system", generator.default_system)
    continued = shown_after(page, "#generate")
    assert continued == ids(api.post("/playlist", json={"title": title, "num_songs": num_songs,
                                                        "seeds": again[:2]}).json())
    assert not set(again[:2]) & set(continued)
    page.fill("#seeds", "")

    # The API's refusal is one line in the page; the playlist shown stays.
    page.fill("#num-songs", "0")
    page.click("#generate")
    page.wait_for_selector("#error", state="visible")
    error = page.inner_text("#error")
    assert "num_songs" in error and "\n" not in error
    assert page.eval_on_selector_all("#songs li", "items => items.length") == num_songs
    page.screenshot(path=str(tmp_path / "page.png"))


def test_the_page_and_the_api_page_load_nothing_from_elsewhere(browser, live):
    """The machine may be offline: the page and /docs (Swagger UI) draw from the service's own files alone."""
    for path, drawn in (("/", "#system option:checked"), ("/docs", ".opblock")):
        page = browser.new_page()
        elsewhere = []
        page.on("request", lambda request: request.url.startswith(live) or request.url.startswith("data:")
                or elsewhere.append(request.url))
        page.goto(live + path)
        assert not elsewhere, (path, elsewhere)
        page.wait_for_selector(drawn, state="attached", timeout=30_000)
        page.close()
