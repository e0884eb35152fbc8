"""Training examples built once per torchrun and handed to the other ranks in a file.

Under ``torchrun --nproc_per_node=N train_tiger.py`` the main process reads train.tsv and builds the tokenizer and
the examples (with the title kNN that retrieval and neighbour targets fit on every training playlist). It writes the
examples beside the checkpoints; every other rank loads them instead of reading the corpus, so it holds the
examples, not the playlists and their kNN (docs/scaling.md, "Memory per rank"). The pooled examples are flat arrays
(genrec.train.pooled_targets.PooledExamples) that a rank maps from the file rather than reads: the machine's page
cache holds them once for all its ranks (docs/scaling.md, "The examples in every rank"). The file is removed when
training ends. Each rank trains on the same examples, and the Trainer's distributed sampler gives each its share of
a batch.

The file holds plain lists, numbers, strings and tensors only, read with ``weights_only=True``: loading it runs no
code (docs/reliability.md).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch

from genrec.artifacts import atomic_path
from genrec.errors import ArtifactError
from genrec.model.retrieval import KnownLists
from genrec.model.title_vectors import TitleVectorEncoder
from genrec.train.batches import Encoded, ExampleDataset, TrainingData
from genrec.train.pooled_targets import PooledDataset, PooledExamples

EXAMPLES_FILE = "training_examples.pt"
PLAIN_FIELDS = ("pairs", "target_tokens", "truncated_titles", "neighbour_setup", "seeded", "retrieval_summary")
"""TrainingData's fields that are plain values already."""


def share_examples(path: Path, data: TrainingData) -> None:
    """Write the examples for the other ranks: everything but the retriever (its playlists and kNN: the main process
    alone saves it with the model) and the title encoder (a model each rank loads itself)."""
    train = data.train
    payload = {
        "train": {"pooled": train.examples.to_tensors()} if isinstance(train, PooledDataset)
        else {"encoded": fields_of(train.encoded)},
        "val": fields_of(data.val.encoded),
        "probe_lists": data.probe_lists.lists if data.probe_lists is not None else None,
        **{name: getattr(data, name) for name in PLAIN_FIELDS},
    }
    with atomic_path(path) as staged:
        torch.save(payload, staged)


def shared_examples(path: Path, title_encoder: str) -> TrainingData:
    """The examples the main process wrote (:func:`share_examples`), with this rank's own title encoder."""
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: the main process writes it before the other ranks start training")
    # Mapped, not read: the pooled examples' arrays stay in the page cache that every rank shares.
    payload = torch.load(path, weights_only=True, mmap=True)
    train, lists = payload["train"], payload["probe_lists"]
    return TrainingData(
        PooledDataset(PooledExamples.from_tensors(train["pooled"])) if "pooled" in train
        else ExampleDataset(Encoded(**train["encoded"])),
        ExampleDataset(Encoded(**payload["val"])),
        title_encoder=TitleVectorEncoder(title_encoder) if title_encoder else None, retrieval=None,
        probe_lists=KnownLists(list(lists), list(lists.values())) if lists is not None else None,
        **{name: payload[name] for name in PLAIN_FIELDS})


def fields_of(record) -> dict:
    """A dataclass's fields by name, not copied (dataclasses.asdict would copy every list)."""
    return {field.name: getattr(record, field.name) for field in fields(record)}
