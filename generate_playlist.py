"""Turn a playlist title into a playlist of real songs, from a model bundle (export_bundle.py writes one).

    python generate_playlist.py                                   # interactive prompt (:help for commands)
    python generate_playlist.py --title "late night drive"
    python generate_playlist.py --title "夏日海边" --json --num-songs 30
    python generate_playlist.py --title "road trip" --seeds "Riptide - Vance Joy; Ophelia - The Lumineers"
    python generate_playlist.py --input titles.txt --output playlists.jsonl
    python generate_playlist.py --input titles.txt --output playlists/ --format m3u8   # one file per title
    python generate_playlist.py --serve --port 8000               # HTTP service and web page (http://127.0.0.1:8000)
    python generate_playlist.py --model models/spotify_mpd --system knn --title "summer"

--model takes a bundle folder, or a model folder holding one in bundle/. The system served by default is the one
that scored best on the validation split; --system picks another. Decoding settings and the seed are the bundle's
(those it was evaluated with) unless given here.
"""

import sys
from dataclasses import asdict, replace
from pathlib import Path

from config import DecodeConfig, RunConfig
from genrec.cli import LOG_DIR, run_script
from genrec.errors import ConfigError
from genrec.serve.generator import PlaylistGenerator, check_options, generate_file, one_title
from genrec.serve.repl import repl
from genrec.serve.seeds import split_seeds


def script_flags(parser) -> None:
    parser.add_argument("--format", default="jsonl", choices=["jsonl", "jspf", "m3u8", "csv"],
                        help="Batch mode: jsonl writes one JSON line per title to --output; jspf, m3u8 and csv write "
                             "one file per title into the folder --output.")
    parser.add_argument("--seeds", default="", help="Songs the playlist continues, separated by ';' (song ids or "
                                                    "'song - artist'); never repeated in it. With --title, --input "
                                                    "or the prompt (where TITLE | SONG; SONG overrides them).")
    parser.add_argument("--serve", action="store_true", help="Start the HTTP service and its web page.")
    parser.add_argument("--host", default="127.0.0.1", help="With --serve: the address to listen on.")
    parser.add_argument("--port", type=int, default=8000, help="With --serve: the port to listen on.")


GROUPS = ["run", "decode", "generate"]
SHORT_FLAGS = {"--title": "--generate.title", "--input": "--generate.input", "--output": "--generate.output",
               "--num-songs": "--generate.num_songs", "--json": "--generate.json=true",
               "--system": "--generate.system", "--model": "--run.model_dir", "--seed": "--run.seed"}


def main(cfg, extras) -> None:
    g, d = cfg.generate, cfg.decode
    if bool(g.input) != bool(g.output):
        raise ConfigError("batch mode needs both --input (titles, one per line) and --output (a .jsonl file)")
    generator = PlaylistGenerator.load(cfg.run.model_dir, cfg.run.device)
    # The bundle's decoding settings and seed (those it was evaluated with) hold unless set here.
    given = {name: value for name, value in {**asdict(d), "seed": cfg.run.seed}.items()
             if value != {**asdict(DecodeConfig()), "seed": RunConfig().seed}[name]}
    generator.batch_size = given.pop("batch_size", generator.batch_size)
    seeds = tuple(split_seeds(extras["seeds"]))
    if seeds and extras["serve"]:
        raise ConfigError("--seeds goes with --title, --input or the prompt; the service takes seeds per request")
    generator.seed_resolver.resolve(seeds)  # an unknown seed stops here, before any title
    generator.options = check_options(replace(generator.options, num_songs=g.num_songs, system=g.system, seeds=seeds,
                                              **given), generator.systems)
    if extras["serve"]:
        from genrec.serve.service import serve
        serve(generator, extras["host"], extras["port"])
    elif g.input:
        count, seconds = generate_file(generator, g.input, g.output, extras["format"])
        print(f"{count} playlists written to {g.output} ({count / max(seconds, 1e-9):.1f} titles/s)")
    elif g.title:
        print(one_title(generator, g.title, g.json))
    else:
        repl(generator, Path(LOG_DIR) / "generate_history")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=script_flags, short=SHORT_FLAGS, groups=GROUPS))
