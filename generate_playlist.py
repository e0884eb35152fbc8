"""Stage 5: turn a playlist title into a playlist of real songs.

    python generate_playlist.py                                   # interactive prompt (:help for commands)
    python generate_playlist.py --title "late night drive"
    python generate_playlist.py --title "夏日海边" --json --num-songs 30
    python generate_playlist.py --input titles.txt --output playlists.jsonl
    python generate_playlist.py --model models/spotify_mpd --system hybrid --title "summer"
"""

import sys
from pathlib import Path

from genrec.cli import LOG_DIR, run_script
from genrec.errors import ConfigError
from genrec.serve.generator import PlaylistGenerator, generate_file, one_title
from genrec.serve.repl import repl


GROUPS = ["run", "decode", "generate"]
SHORT_FLAGS = {"--title": "--generate.title", "--input": "--generate.input", "--output": "--generate.output",
         "--num-songs": "--generate.num_songs", "--json": "--generate.json=true", "--system": "--generate.system",
         "--model": "--run.model_dir", "--seed": "--run.seed"}


def main(cfg, extras) -> None:
    g = cfg.generate
    if bool(g.input) != bool(g.output):
        raise ConfigError("batch mode needs both --input (titles, one per line) and --output (a .jsonl file)")
    generator = PlaylistGenerator(cfg)
    if g.input:
        count = generate_file(generator, g.input, g.output)
        print(f"{count} playlists written to {g.output}")
    elif g.title:
        print(one_title(generator, g.title, g.json))
    else:
        repl(generator, Path(LOG_DIR) / "generate_history")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, short=SHORT_FLAGS, groups=GROUPS))
