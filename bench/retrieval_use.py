"""How much a retrieval-augmented model (tiger.retrieved_songs) uses the songs it is given.

    python bench/retrieval_use.py [--config ...] [--playlists 60]     # after train_tiger.py

For the first ``--playlists`` test titles, decodes as many songs as the model retrieves (beam search,
as the evaluation does) and prints the share of them that are among the retrieved songs, and how
often the model's first song is in the retrieved top 5. A model that copies title kNN scores near
1.0 on both; one that ignores its input scores near what title kNN and the model share by chance.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genrec.cli import run_script  # noqa: E402
from genrec.corpus import corpus_path, read_corpus, vocab_path  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.evaluation import decoding_settings  # noqa: E402
from genrec.generation import decode  # noqa: E402
from genrec.model import load_tiger, resolve_device, tiger_final_dir  # noqa: E402


def add_arguments(parser) -> None:
    parser.add_argument("--playlists", type=int, default=60, help="test titles measured")


def main(cfg, extras) -> None:
    bundle = load_tiger(tiger_final_dir(cfg), resolve_device(cfg.run.device), vocab_path(cfg))
    if bundle.retriever is None or bundle.target_mode != "single":
        raise ConfigError(f"{tiger_final_dir(cfg)} is not a single-mode model trained with tiger.retrieved_songs")
    m = bundle.retriever.songs
    titles = [row.input_text for row in read_corpus(corpus_path(cfg, "test"))][:extras["playlists"]]
    settings = replace(decoding_settings(cfg.eval, "single"), num_songs=m, num_beams=max(m, cfg.eval.num_beams))
    decoded = decode(bundle, titles, settings, progress=True)
    given = bundle.retriever.knn.recommend(titles, m)
    kept = [len({song for song, _ in d.songs} & set(k)) / m for d, k in zip(decoded, given)]
    first = [bool(d.songs) and d.songs[0][0] in k[:5] for d, k in zip(decoded, given)]
    print(f"{len(titles)} test titles, {m} retrieved songs each")
    print(f"share of the model's top {m} songs that were retrieved: {sum(kept) / len(kept):.3f}")
    print(f"model's first song in the retrieved top 5: {sum(first) / len(first):.3f}")


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=add_arguments))
