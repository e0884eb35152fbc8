"""generate_playlist: a generative playlist recommender (titles to semantic-ID songs with T5)."""

import os

# Models are only ever read from local folders: never let a library reach for the Hugging Face hub. Set here, on the
# first import of anything in genrec, because huggingface_hub reads it once, when transformers is first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = ["GenerateOptions", "Playlist", "PlaylistGenerator", "Song"]


def __getattr__(name: str):
    # Lazy: `import genrec.cli` (every script) must not pay for torch and transformers before it needs them.
    if name in __all__:
        from genrec.serve import generator
        return getattr(generator, name)
    raise AttributeError(f"module 'genrec' has no attribute {name!r}")
