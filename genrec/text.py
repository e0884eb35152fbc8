"""Title clean-up shared by every stage, so a title means the same thing in training and at the prompt."""

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
