"""Stage 5: turn a playlist title into a playlist of real songs.

    python generate_playlist.py                                   # interactive prompt (:help for commands)
    python generate_playlist.py --generate.title "late night drive"
    python generate_playlist.py --generate.title "夏日海边" --generate.json true
    python generate_playlist.py --generate.input titles.txt --generate.output playlists.jsonl
"""

import sys
from pathlib import Path

from genrec.cli import run_script
from genrec.errors import ConfigError
from genrec.serve.generator import PlaylistGenerator, generate_file, one_title
from genrec.serve.repl import repl


def main(cfg, extras) -> None:
    g = cfg.generate
    if bool(g.input) != bool(g.output):
        raise ConfigError("batch mode needs both --generate.input (titles, one per line) and --generate.output")
    generator = PlaylistGenerator(cfg)
    if g.input:
        count = generate_file(generator, g.input, g.output)
        print(f"{count} playlists written to {g.output}")
    elif g.title:
        print(one_title(generator, g.title, g.json))
    else:
        repl(generator, Path(cfg.run.log_dir) / "generate_history")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__))
