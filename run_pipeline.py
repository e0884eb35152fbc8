"""The whole pipeline, stage 0 to stage 5 (the bundle), then one sample playlist.

    python run_pipeline.py                                  # demo data, RQ-KMeans, a few CPU minutes
    python run_pipeline.py --method rqvae                   # RQ-VAE semantic IDs instead
    python run_pipeline.py --config data/spotify_mpd/config.yaml --config presets/mpd_cpu.yaml
    python run_pipeline.py --force                          # rerun every stage

Stages whose artifacts are up to date with their inputs and config are skipped. Every other flag
is passed to each stage unchanged: any option of any stage is accepted (each stage's --help lists its own
groups; docs/options.md lists them all). Below, the groups every stage shares.
"""

import sys

from genrec.cli import expand_short_flags, run_script
from genrec.stages import METHODS, run_pipeline, strip_pipeline_flags


def pipeline_flags(parser) -> None:
    parser.add_argument("--method", choices=METHODS, default="rq_kmeans", help="Quantizer for stage 1.")
    parser.add_argument("--force", action="store_true", help="Rerun every stage even if up to date.")


GROUPS = ["run", "data", "prepare", "ids"]
SHORT_FLAGS = {"--seed": "--run.seed"}


def main(cfg, extras) -> None:
    run_pipeline(cfg, strip_pipeline_flags(expand_short_flags(sys.argv[1:], SHORT_FLAGS)), extras["method"],
                 extras["force"])


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, extra=pipeline_flags, short=SHORT_FLAGS, groups=GROUPS))
