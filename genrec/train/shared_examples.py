"""Training examples built once per torchrun and handed to the other ranks in a file.

Under ``torchrun --nproc_per_node=N train_tiger.py`` the main process reads train.tsv and builds the tokenizer and
the examples (with the title kNN that retrieval and neighbour targets fit on every training playlist). It writes the
examples beside the checkpoints; every other rank loads them instead of reading the corpus, so it holds the
examples, not the playlists and their kNN (docs/scaling.md, "Memory per rank"). The file is removed when training
ends. Each rank trains on the same examples, and the Trainer's distributed sampler gives each its share of a batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from genrec.artifacts import atomic_path
from genrec.errors import ArtifactError
from genrec.model.title_vectors import TitleVectorEncoder
from genrec.train.batches import TrainingData

EXAMPLES_FILE = "training_examples.pt"


def share_examples(path: Path, data: TrainingData) -> None:
    """Write the examples for the other ranks: everything but the retriever (its playlists and kNN: the main process
    alone saves it with the model) and the title encoder (a model each rank loads itself)."""
    with atomic_path(path) as staged:
        torch.save(replace(data, title_encoder=None, retrieval=None), staged)


def shared_examples(path: Path, title_encoder: str) -> TrainingData:
    """The examples the main process wrote (:func:`share_examples`), with this rank's own title encoder."""
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: the main process writes it before the other ranks start training")
    data = torch.load(path, weights_only=False)  # our own file, written by this run's main process
    data.title_encoder = TitleVectorEncoder(title_encoder) if title_encoder else None
    return data
