"""RQ-KMeans against RQ-VAE on the same song vectors with the same code budget.

    python bench/quantizers.py                                        # the demo data
    python bench/quantizers.py --config data/spotify_mpd/config.yaml  # imported MPD song vectors

Both get ids.levels x ids.codebook_size codes. Prints the stage-1 report of each side by side
(Average Cosine Similarity, MSE, usage, perplexity, unique-ID fraction, neighbourhood check), the
wall time of each, and whether RQ-VAE clears the no-collapse bars. The two reports are written to
<run.output_dir>/bench_quantizers/, never over the stage's own reports.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genrec.quantize import rq_kmeans, rqvae  # noqa: E402
from genrec.cli import parse_config  # noqa: E402
from genrec.data.files import load_song_vectors  # noqa: E402
from genrec.quantize.report import quantizer_report, save_report, side_by_side  # noqa: E402


def main() -> None:
    cfg, _ = parse_config(description=__doc__)
    vectors = load_song_vectors(cfg.data).vectors
    levels, vocab_size = cfg.ids.levels, cfg.ids.codebook_size
    kmeans_cfg = rq_kmeans.RQKMeansSettings.from_config(cfg.ids, cfg.rqkmeans, cfg.run.device)
    device = rqvae.pick_device(cfg.run.device)
    print(f"{len(vectors)} songs x {vectors.shape[1]} dims from {cfg.data.song_vector_file}; "
          f"{levels} levels x {vocab_size} codes each; RQ-VAE on {device}")

    start = time.perf_counter()
    codebooks = rq_kmeans.train_rq_kmeans(vectors, kmeans_cfg, cfg.run.seed)
    kmeans_codes = rq_kmeans.encode(vectors, codebooks)
    kmeans_seconds = time.perf_counter() - start
    kmeans_report = quantizer_report(vectors, rq_kmeans.decode(kmeans_codes, codebooks), kmeans_codes,
                                     vocab_size, cfg.run.seed)

    start = time.perf_counter()
    trained = rqvae.train_rqvae(vectors, rqvae.RQVAESettings.from_config(cfg.ids, cfg.rqvae), cfg.run.seed, device)
    vae_seconds = time.perf_counter() - start
    vae_report = quantizer_report(vectors, rqvae.decode(trained.model, trained.codes), trained.codes, vocab_size,
                                  cfg.run.seed)

    out_dir = Path(cfg.run.output_dir) / "bench_quantizers"
    save_report(str(out_dir), "rq_kmeans", kmeans_report)
    save_report(str(out_dir), "rqvae", vae_report)
    print(side_by_side(str(out_dir), None))
    print(f"{'wall time (s)':28s}{kmeans_seconds:12.1f}{vae_seconds:12.1f}   (RQ-VAE / RQ-KMeans: "
          f"{vae_seconds / kmeans_seconds:.0f}x)")
    bars = f"usage >= {rqvae.USAGE_BAR:.0%} and perplexity >= {rqvae.PERPLEXITY_BAR * vocab_size:.1f} per level"
    verdict = "collapsed at levels " + ", ".join(str(c["level"]) for c in trained.collapsed) \
        if trained.collapsed else "no collapse"
    print(f"RQ-VAE no-collapse bars ({bars}): {verdict}; best epoch {trained.best_epoch}, "
          f"{trained.codes_reset} dead codes reset")


if __name__ == "__main__":
    main()
