"""Title clean-up shared by every stage, so a title means the same thing in training and at the prompt."""

import functools
import re
import unicodedata

_SPACES = re.compile(r"\s+")


def clean_title(raw: str) -> str:
    """NFC-normalise, drop control and zero-width format characters, collapse whitespace.

    Emoji, CJK and accents are kept as they are; only characters that render as nothing are removed.
    Zero-width joiners inside emoji sequences (U+200D) are kept so that family/flag emoji survive.
    """
    text = unicodedata.normalize("NFC", raw)
    text = "".join(ch for ch in text
                   if ch == "\u200d" or ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    return _SPACES.sub(" ", text).strip()


_OPENCC_CONFIG = {"simplified": "t2s", "traditional": "s2t"}


@functools.lru_cache(maxsize=None)
def _converter(script: str):
    import opencc  # imported on first use: most catalogues never fold scripts
    return opencc.OpenCC(_OPENCC_CONFIG[script])


def fold_script(title: str, script: str) -> str:
    """Write a title's Chinese characters in one script (``corpus.title_script``); '' leaves it as it is.

    Folding is character by character plus OpenCC's phrase tables, and leaves non-Chinese text alone,
    so "夏日海邊 Chill" -> "夏日海边 Chill" with 'simplified'. Applied to the training titles when the
    corpus is written and to every title a model is asked about, so both sides match.
    """
    return _converter(script).convert(title) if script else title


def script_counts(titles: list[str]) -> dict[str, int]:
    """How many titles OpenCC would change when writing them in Simplified, and in Traditional script: a
    title that only one of them changes is written in the other; one that both change mixes the two."""
    return {"titles": len(titles),
            "traditional": sum(fold_script(t, "simplified") != t for t in titles),
            "simplified": sum(fold_script(t, "traditional") != t for t in titles)}
