"""generate_playlist: a generative playlist recommender (titles to semantic-ID songs with T5)."""

__all__ = ["GenerateOptions", "Playlist", "PlaylistGenerator", "Song"]


def __getattr__(name: str):
    # Lazy: `import genrec.cli` (every script) must not pay for torch and transformers before it needs them.
    if name in __all__:
        from genrec.serve import generator
        return getattr(generator, name)
    raise AttributeError(f"module 'genrec' has no attribute {name!r}")
