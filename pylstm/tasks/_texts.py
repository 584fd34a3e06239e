"""Texts for the character model: a small corpus made in code, and the Python standard library's source.

``quick_corpus()`` is the CI text: a play-like script (speaker names, lines of
words, punctuation, blank lines) drawn from fixed word lists by a tiny linear
congruential generator, so it is the same on every machine, Python and NumPy
version.  ``stdlib_text()`` is the default text of the full task: the source of
the standard library's top-level modules in sorted order (always present,
license-clean), so a fresh machine needs no download.
"""
from __future__ import annotations

import os
import sysconfig

__all__ = ["quick_corpus", "stdlib_text", "read_text"]

_NAMES = ("ROMEO", "JULIET", "NURSE", "FRIAR", "MERCUTIO", "TYBALT", "CAPULET", "BENVOLIO")
_WORDS = (
    "the", "and", "my", "lord", "love", "night", "sweet", "thou", "art", "what", "is", "this", "come", "good",
    "heart", "death", "fair", "day", "not", "with", "her", "his", "me", "to", "be", "so", "light", "name",
    "shall", "would", "here", "there", "hand", "eyes", "speak", "hath", "thee", "that", "of", "in", "a", "i",
    "no", "yet", "now", "well", "go", "man", "too", "say", "from", "by", "but", "all", "for", "true",
)
_ENDS = (".", ".", ",", "?", "!", ";")


class _LCG:
    """Numerical Recipes' 32-bit LCG: tiny, and the same everywhere."""

    def __init__(self, seed: int):
        self.state = seed & 0xFFFFFFFF

    def below(self, n: int) -> int:
        self.state = (1664525 * self.state + 1013904223) & 0xFFFFFFFF
        return (self.state >> 8) % n


def quick_corpus(chars: int = 40_000, seed: int = 1) -> str:
    """A deterministic play-like text of about ``chars`` characters.

    It has structure beyond the previous character (names after blank lines, a
    colon and newline after a name, a capital after a newline, words from a fixed
    list), so a model that uses context beats a bigram model clearly.
    """
    rng = _LCG(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        speech = [_NAMES[rng.below(len(_NAMES))] + ":"]
        for _ in range(1 + rng.below(3)):
            words = [_WORDS[rng.below(len(_WORDS))] for _ in range(3 + rng.below(6))]
            words[0] = words[0].capitalize()
            speech.append(" ".join(words) + _ENDS[rng.below(len(_ENDS))])
        block = "\n".join(speech) + "\n\n"
        out.append(block)
        size += len(block)
    return "".join(out)


def stdlib_text(max_chars: int = 2_000_000) -> str:
    """The standard library's top-level ``*.py`` files, sorted by name, concatenated up to ``max_chars``.

    Each file is preceded by a ``# ---- name.py`` line.  Characters outside ASCII are
    dropped (a handful, in a few docstrings) to keep the vocabulary small.
    """
    root = sysconfig.get_paths()["stdlib"]
    parts: list[str] = []
    size = 0
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if not name.endswith(".py") or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            body = f.read().encode("ascii", errors="ignore").decode("ascii")
        piece = f"# ---- {name}\n{body}\n"
        parts.append(piece)
        size += len(piece)
        if size >= max_chars:
            break
    return "".join(parts)[:max_chars]


def read_text(path: str) -> str:
    """A text file as str (UTF-8; undecodable bytes are replaced, not fatal)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if len(text) < 1000:
        raise ValueError(f"{path}: the text has {len(text)} characters; a character model needs at least 1000")
    return text
