"""Stage 3: train the T5 (title -> semantic-ID tokens) on the corpus; the best model goes to models/tiger_final/.

    python train_tiger.py                                        # CPU or one GPU
    torchrun --nproc_per_node=2 train_tiger.py                   # DDP, one process per device (or CPU core)
    python train_tiger.py --config data/spotify_mpd/config.yaml --config presets/mpd_cpu.yaml
    python train_tiger.py --train.resume true                    # continue after an interruption
"""

import json
import sys

from genrec.cli import run_script
from genrec.train.loop import train


GROUPS = ["run", "corpus", "network", "train", "targets", "retrieval"]
SHORT_FLAGS = {"--model": "--run.model_dir", "--seed": "--run.seed"}


def main(cfg, extras) -> None:
    summary = train(cfg)
    if summary["processes"] == 1 or _is_main_process():
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        print(f"model written to {cfg.run.model_dir}/tiger_final; next: python evaluate_tiger.py")


def _is_main_process() -> bool:
    import os
    return os.environ.get("RANK", "0") == "0"


if __name__ == "__main__":
    sys.exit(run_script(main, __doc__, short=SHORT_FLAGS, groups=GROUPS))
