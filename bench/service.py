"""The HTTP service under load: concurrent clients posting titles, beside in-process generate() on the same titles.

    python bench/service.py --model models/bundle [--clients 50] [--seconds 30] [--num-songs 20] [--system knn]
                            [--screenshot page.png] [--json-out service.json]

- service: ``generate_playlist.py --model BUNDLE --serve`` as a user starts it, in a subprocess on 127.0.0.1 at a
  free port (its log goes to ``logs/bench_service_server.log``); the bench waits for ``GET /health``.
- in-process, the same-run baseline: ``generate(title)`` in this process for each title of a built-in list (English
  moods, Chinese, emoji, one nonsense title), once as a warm-up and then timed, while the service is idle.
- sequential: one client posts each title once, one request at a time (the service's own cost over generate()).
- N clients: ``--clients`` threads, each with its own keep-alive httpx client, post titles from the list in turn
  (each starting at another title) for ``--seconds``; loopback only. A request's latency runs from sending it to
  reading its whole answer. An error is a failed request, any status but 200, or a playlist without exactly
  ``--num-songs`` distinct songs.

The table gives requests, errors, throughput (requests over the seconds from the first request to the last answer),
p50, p95 and max latency, and each p50 over the in-process
p50. The service generates one playlist at a time, so under N clients a request's latency is mostly its wait in the
queue. ``--screenshot FILE`` then opens the page in headless chromium (Playwright; Debian's /usr/bin/chromium or
``CHROMIUM_PATH``), generates a playlist for a Chinese title with an emoji and saves a PNG (drawn with the fonts
installed: without a CJK font, e.g. Debian's fonts-wqy-microhei, Chinese shows as boxes). Exits non-zero on any
error.
"""

from __future__ import annotations

import argparse
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
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.errors import GenrecError  # noqa: E402
from genrec.serve.bundle import find_bundle  # noqa: E402
from bench.sample_titles import SAMPLE_TITLES  # noqa: E402

TITLES = SAMPLE_TITLES[:27]  # the 27 the figures in docs/results.md were measured with
SCREENSHOT_TITLE = "夏日海边 🌊"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
SERVER_LOG = Path("logs") / "bench_service_server.log"


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models", help="bundle folder, or a model folder holding bundle/")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the clients post")
    parser.add_argument("--num-songs", type=int, default=20, help="songs per playlist")
    parser.add_argument("--system", default="", help="the system asked (default: the bundle's default)")
    parser.add_argument("--screenshot", help="save a PNG of the page showing a playlist to this file")
    parser.add_argument("--json-out", help="also write every figure to this JSON file")
    return parser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(bundle: Path, port: int, timeout: float = 120.0) -> subprocess.Popen:
    """``generate_playlist.py --serve`` in a subprocess, once it answers /health."""
    SERVER_LOG.parent.mkdir(exist_ok=True)
    log = open(SERVER_LOG, "w", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(REPO / "generate_playlist.py"), "--model", str(bundle), "--serve",
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false"))
    log.close()
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise GenrecError(f"the service exited {proc.returncode}: {SERVER_LOG.read_text(encoding='utf-8')[-800:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_service(proc)
            raise GenrecError(f"the service did not answer /health within {timeout:g} s (see {SERVER_LOG})")
        time.sleep(0.2)


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def in_process(bundle: Path, options: dict) -> list[float]:
    """Seconds of generate() per title in this process, after one untimed pass."""
    from genrec import PlaylistGenerator

    generator = PlaylistGenerator.load(bundle)
    for title in TITLES:
        generator.generate(title, **options)
    seconds = []
    for title in TITLES:
        start = time.perf_counter()
        generator.generate(title, **options)
        seconds.append(time.perf_counter() - start)
    return seconds


class Tally:
    """Latencies and errors from many client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds: list[float] = []
        self.errors: dict[str, int] = {}
        self.first_error = ""

    def post(self, client: httpx.Client, body: dict, num_songs: int) -> None:
        start = time.perf_counter()
        try:
            response = client.post("/playlist", json=body)
            songs = response.json().get("songs", []) if response.status_code == 200 else []
            error = ("" if len({s["song_id"] for s in songs}) == num_songs else f"{len(songs)} songs") \
                if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:200]}"
        except (httpx.HTTPError, ValueError) as err:
            error = f"{type(err).__name__}: {err}"
        elapsed = time.perf_counter() - start
        with self.lock:
            self.seconds.append(elapsed)
            if error:
                kind = error.split(":")[0]
                self.errors[kind] = self.errors.get(kind, 0) + 1
                self.first_error = self.first_error or error


def one_client(url: str, options: dict, num_songs: int) -> Tally:
    tally = Tally()
    with httpx.Client(base_url=url, timeout=60) as client:
        for title in TITLES:
            tally.post(client, {"title": title, **options}, num_songs)
    return tally


def many_clients(url: str, options: dict, num_songs: int, clients: int, seconds: float) -> tuple[Tally, float]:
    """``clients`` threads posting for ``seconds``; returns the tally and the wall seconds until the last answer."""
    tally, go = Tally(), threading.Event()
    stop_at = [0.0]

    def client_loop(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            go.wait()
            i = offset
            while time.perf_counter() < stop_at[0]:
                tally.post(client, {"title": TITLES[i % len(TITLES)], **options}, num_songs)
                i += 1

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    stop_at[0] = start + seconds
    go.set()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - start


def figures(seconds: list[float], wall: float, errors: int, baseline_p50_ms: float | None) -> dict:
    ms = np.asarray(seconds) * 1000
    p50 = float(np.percentile(ms, 50))
    return {"requests": len(seconds), "errors": errors, "per_s": len(seconds) / wall, "p50_ms": p50,
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
            "p50_over_in_process": p50 / baseline_p50_ms if baseline_p50_ms else 1.0}


def chromium_path() -> str | None:
    candidates = [os.environ.get("CHROMIUM_PATH", ""), *CHROMIUM_PATHS, shutil.which("chromium") or ""]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


def screenshot(url: str, path: str) -> None:
    """The page in headless chromium with a playlist for :data:`SCREENSHOT_TITLE`, saved as a PNG."""
    browser_path = chromium_path()
    if browser_path is None:
        raise GenrecError("--screenshot needs chromium: install Debian's chromium or set CHROMIUM_PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise GenrecError("--screenshot needs playwright (pip install playwright)") from None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.goto(url + "/")
        page.wait_for_selector("#system option:checked", state="attached")
        page.fill("#title", SCREENSHOT_TITLE)
        page.fill("#num-songs", "10")
        page.click("#generate")
        page.wait_for_function("Number(document.querySelector('#songs').dataset.generation) > 0", timeout=60_000)
        page.screenshot(path=path, full_page=True)
        browser.close()


def main(args) -> dict:
    if args.clients < 1 or args.seconds <= 0 or args.num_songs < 1:
        raise GenrecError("--clients and --num-songs must be at least 1 and --seconds above 0")
    bundle = find_bundle(args.model)
    options = {"num_songs": args.num_songs, **({"system": args.system} if args.system else {})}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_service(bundle, port)
    try:
        health = httpx.get(f"{url}/health", timeout=10).json()
        baseline = in_process(bundle, options)
        base = figures(baseline, sum(baseline), 0, None)
        single = one_client(url, options, args.num_songs)
        single_wall = sum(single.seconds)
        loaded, wall = many_clients(url, options, args.num_songs, args.clients, args.seconds)
        if args.screenshot:
            screenshot(url, args.screenshot)
    finally:
        stop_service(proc)
    rows = {"in-process generate()": base,
            "service, sequential": figures(single.seconds, single_wall, sum(single.errors.values()), base["p50_ms"]),
            f"service, {args.clients} client{'s' if args.clients > 1 else ''}": figures(loaded.seconds, wall, sum(loaded.errors.values()),
                                                          base["p50_ms"])}
    errors = {**single.errors, **{k: v + single.errors.get(k, 0) for k, v in loaded.errors.items()}}
    result = {"bundle": str(bundle), "system": args.system or health["default_system"],
              "catalogue_songs": health["catalogue_songs"], "num_songs": args.num_songs, "titles": len(TITLES),
              "clients": args.clients, "seconds": args.seconds, "rows": rows, "errors": errors,
              "first_error": single.first_error or loaded.first_error, "screenshot": args.screenshot}
    print_report(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def print_report(result: dict) -> None:
    print(f"{result['bundle']}: {result['catalogue_songs']} songs; system {result['system']}, {result['num_songs']} "
          f"songs a playlist, {result['titles']} titles; {result['clients']} clients for {result['seconds']:g} s "
          f"over loopback")
    print(f"{'':<24}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
          f"{'p50 / in-process':>18}")
    for name, f in result["rows"].items():
        print(f"{name:<24}{f['requests']:9d}{f['errors']:8d}{f['per_s']:9.1f}{f['p50_ms']:9.1f}{f['p95_ms']:9.1f}"
              f"{f['max_ms']:9.1f}{f['p50_over_in_process']:18.1f}")
    if result["errors"]:
        print(f"errors: {result['errors']}; first: {result['first_error']}")
    if result["screenshot"]:
        print(f"screenshot of the page: {result['screenshot']}")


if __name__ == "__main__":
    try:
        outcome = main(bench_parser().parse_args())
    except GenrecError as err:
        sys.exit(f"error: {err}")
    sys.exit(1 if outcome["errors"] else 0)
