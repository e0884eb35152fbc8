"""generate_playlist: a generative playlist recommender (titles to semantic-ID songs with T5)."""
