"""Text as token ids, laid out for stateful training on a long stream.

``TextCorpus(text)`` builds a character vocabulary (sorted unique characters),
encodes the text once as integer ids and serves ``(x, y)`` batches where ``y``
is ``x`` shifted by one character::

    corpus = pl.data.TextCorpus(open("input.txt").read())
    train, valid = corpus.split(0.9)              # held-out tail, same vocabulary
    model.fit(train.batches(batch_size=32, seq_len=64), epochs=5)

``batches`` cuts the text into ``batch_size`` equal streams, one per row, and
walks along them ``seq_len`` characters at a time, so row ``i`` of batch
``k + 1`` continues row ``i`` of batch ``k``: exactly what a ``stateful=True``
LSTM needs to carry its state from one batch to the next (truncated BPTT)::

    text ids   0 1 2 3 4 5 6 7 8 9 10 11 12      (batch_size=2, seq_len=3)
    stream 0:  0 1 2 | 3 4 5                   batch 0 row 0 = [0 1 2], y = [1 2 3]
    stream 1:  6 7 8 | 9 10 11                 batch 1 row 1 = [9 10 11], y = [10 11 12]

The vocabulary travels with the model (``to_config`` / ``from_config``), so a
checkpoint can turn generated ids back into text.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["TextCorpus", "StreamBatches", "one_hot"]

_ID_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_CONFIG_NAME = "TextCorpus"


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_vocab(vocab: Any) -> tuple[str, ...]:
    # A str is a sequence of one-character tokens; anything else must be a
    # sequence of one-character strs.  Order is kept: it is the id mapping.
    if isinstance(vocab, str):
        tokens = tuple(vocab)
    elif isinstance(vocab, Iterable):
        tokens = tuple(vocab)
        for t in tokens:
            if not isinstance(t, str) or len(t) != 1:
                raise TypeError(f"vocab must hold single characters (str of length 1), got {t!r}")
    else:
        raise TypeError(f"vocab must be a str or a sequence of single characters, got {type(vocab).__name__}")
    if not tokens:
        raise ValueError("vocab must not be empty")
    if len(set(tokens)) != len(tokens):
        dup = sorted({t for t in tokens if tokens.count(t) > 1})
        raise ValueError(f"vocab must not repeat a character, repeated: {dup!r}")
    return tokens


def one_hot(ids: Any, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """One-hot encode integer ids: shape ``ids.shape + (num_classes,)``.

    Parameters
    ----------
    ids : array_like of int
        Token ids, each in ``[0, num_classes)``.
    num_classes : int
        Vocabulary size V.
    dtype : dtype, default float32
        Output dtype.

    Returns
    -------
    np.ndarray
        ``out[..., k] = 1`` where ``ids == k``, 0 elsewhere.

    Notes
    -----
    An LSTM built with ``vocab_size=V`` takes the ids directly (it gathers
    columns of ``W_ih``), so one-hot input is only needed for other layers.
    """
    num_classes = _positive_int("num_classes", num_classes)
    a = np.asarray(ids)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"ids must be an integer array, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        bad = a[(a < 0) | (a >= num_classes)].ravel()[0]
        raise ValueError(f"ids must lie in [0, {num_classes}), found {int(bad)}")
    out = np.zeros(a.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, a[..., None].astype(np.intp), 1, axis=-1)
    return out


class StreamBatches:
    """The ``(x, y)`` batches of a corpus, re-iterable (one pass per epoch) and sized.

    Made by :meth:`TextCorpus.batches`; see there.  ``len()`` is the number of
    batches per pass, so ``fit`` can show progress.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, drop_last: bool,
                 one_hot_dtype: Any, vocab_size: int):
        self.batch_size = batch_size
        self.seq_len = seq_len
        n = (ids.size - 1) // batch_size  # characters per stream (the +1 is y's last target)
        if n < 1 or (drop_last and n < seq_len):
            need = batch_size * (seq_len if drop_last else 1) + 1
            raise ValueError(
                f"text too short for batch_size={batch_size}, seq_len={seq_len}: it has {ids.size} characters, "
                f"at least {need} are needed for one batch"
            )
        # Stream i holds characters [i*n, (i+1)*n); its targets are shifted by one.
        self._x = ids[: batch_size * n].reshape(batch_size, n)
        self._y = ids[1 : batch_size * n + 1].reshape(batch_size, n)
        self.stream_len = n
        self.drop_last = drop_last
        self._one_hot_dtype = one_hot_dtype
        self._vocab_size = vocab_size

    def __len__(self) -> int:
        full, rest = divmod(self.stream_len, self.seq_len)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k in range(len(self)):
            sl = slice(k * self.seq_len, (k + 1) * self.seq_len)
            # Fresh contiguous copies: a training loop may keep or modify them.
            x = np.ascontiguousarray(self._x[:, sl])
            y = np.ascontiguousarray(self._y[:, sl])
            if self._one_hot_dtype is not None:
                x = one_hot(x, self._vocab_size, self._one_hot_dtype)
            yield x, y

    def __repr__(self) -> str:
        return (f"StreamBatches(batch_size={self.batch_size}, seq_len={self.seq_len}, batches={len(self)}, "
                f"stream_len={self.stream_len}, drop_last={self.drop_last})")


class TextCorpus:
    """A text, its character vocabulary, and its encoding as token ids.

    Parameters
    ----------
    text : str
        The corpus.  May be empty only when ``vocab`` is given (a vocabulary-only
        corpus, e.g. restored from a checkpoint to decode generated ids).
    vocab : str or sequence of str, optional
        The characters, in id order.  Default: the sorted unique characters of
        ``text``.  Every character of ``text`` must be in it.
    dtype : {np.int32, np.int64}, default np.int32
        dtype of the ids.

    Attributes
    ----------
    vocab : tuple of str
        ``vocab[k]`` is the character with id ``k``.
    vocab_size : int
    ids : np.ndarray
        The encoded text, shape (len(text),), read-only.

    Examples
    --------
    >>> c = TextCorpus("hello")
    >>> c.vocab, c.encode("hell").tolist(), c.decode([3, 2])
    (('e', 'h', 'l', 'o'), [1, 0, 2, 2], 'ol')
    """

    def __init__(self, text: str, vocab: str | Sequence[str] | None = None, dtype: Any = np.int32):
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in _ID_DTYPES:
            raise TypeError(f"dtype must be int32 or int64, got {self.dtype}")
        if vocab is None:
            if not text:
                raise ValueError("text is empty: give a non-empty text or an explicit vocab")
            vocab = sorted(set(text))
        self.vocab: tuple[str, ...] = _check_vocab(vocab)
        self._index = {ch: k for k, ch in enumerate(self.vocab)}
        self._text_len = len(text)
        self.ids = self.encode(text)
        self.ids.flags.writeable = False  # shared by every batch view

    # ------------------------------------------------------------------ #
    # encoding
    # ------------------------------------------------------------------ #
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return self._text_len

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text``, shape (len(text),); an unknown character is a ValueError."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        try:
            return np.fromiter((self._index[ch] for ch in text), dtype=self.dtype, count=len(text))
        except KeyError:
            unknown = sorted(set(text) - set(self._index))
            shown = "".join(unknown[:20])
            raise ValueError(
                f"text has {len(unknown)} character(s) not in the vocabulary: {shown!r}"
                f"{' ...' if len(unknown) > 20 else ''}"
            ) from None

    def decode(self, ids: Any) -> str:
        """The text of a 1-D sequence of ids (each in ``[0, vocab_size)``)."""
        a = np.asarray(ids)
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
            if a.size == 0:
                return ""
            raise TypeError(f"ids must be integers, got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"ids must be 1-D (T,), got shape {a.shape}; decode each row separately")
        if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
            bad = a[(a < 0) | (a >= self.vocab_size)][0]
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), found {int(bad)}")
        return "".join(self.vocab[k] for k in a.tolist())

    def one_hot(self, ids: Any, dtype: Any = np.float32) -> np.ndarray:
        """``one_hot(ids, self.vocab_size, dtype)``."""
        return one_hot(ids, self.vocab_size, dtype)

    # ------------------------------------------------------------------ #
    # batching
    # ------------------------------------------------------------------ #
    def batches(self, batch_size: int, seq_len: int, *, drop_last: bool = True,
                one_hot: bool = False, one_hot_dtype: Any = np.float32) -> StreamBatches:
        """``(x, y)`` batches over ``batch_size`` parallel streams of the text.

        Parameters
        ----------
        batch_size : int
            Number of streams B (rows).  The text is cut into B equal contiguous
            pieces; a tail shorter than B characters is dropped.
        seq_len : int
            Timesteps T per batch (the truncated-BPTT window).
        drop_last : bool, default True
            Drop the final batch when it would be shorter than ``seq_len``
            (otherwise it comes last, with fewer timesteps and the same B).
        one_hot : bool, default False
            Give ``x`` one-hot encoded, (B, T, V), instead of ids (B, T).
        one_hot_dtype : dtype, default float32

        Returns
        -------
        StreamBatches
            Re-iterable: each pass yields the same batches in the same order;
            ``x`` is (B, T) ids (or (B, T, V) one-hot) and ``y`` (B, T) holds the
            next character's id.  Row ``i`` of batch ``k + 1`` continues row ``i``
            of batch ``k``, so do not shuffle them (``fit`` does not shuffle a
            stateful model).
        """
        batch_size = _positive_int("batch_size", batch_size)
        seq_len = _positive_int("seq_len", seq_len)
        return StreamBatches(self.ids, batch_size, seq_len, bool(drop_last),
                             np.dtype(one_hot_dtype) if one_hot else None, self.vocab_size)

    def split(self, frac: float) -> tuple[TextCorpus, TextCorpus]:
        """Split into a head and a held-out tail that share this vocabulary.

        Parameters
        ----------
        frac : float in (0, 1)
            Fraction of the characters in the head (the training part).

        Returns
        -------
        (TextCorpus, TextCorpus)
            ``(head, tail)``; both have exactly ``self.vocab``, even if a
            character occurs only in one part.
        """
        if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not 0.0 < float(frac) < 1.0:
            raise ValueError(f"frac must be a number in (0, 1), got {frac!r}")
        n = int(round(len(self) * float(frac)))
        if n < 1 or n >= len(self):
            raise ValueError(f"frac={frac} leaves an empty part of a {len(self)}-character text")
        return self._slice(0, n), self._slice(n, len(self))

    def _slice(self, start: int, stop: int) -> TextCorpus:
        part = TextCorpus.__new__(TextCorpus)
        part.dtype, part.vocab, part._index = self.dtype, self.vocab, self._index
        part._text_len = stop - start
        part.ids = self.ids[start:stop]
        return part

    def text(self) -> str:
        """The corpus text (decoded back from the ids)."""
        return self.decode(self.ids)

    # ------------------------------------------------------------------ #
    # config (saved with the model)
    # ------------------------------------------------------------------ #
    def to_config(self) -> dict:
        """A JSON-able description of the vocabulary (the text itself is not kept)."""
        return {"class_name": _CONFIG_NAME, "vocab": list(self.vocab), "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config: dict, text: str = "") -> TextCorpus:
        """A corpus with the saved vocabulary over ``text`` (empty: vocabulary only)."""
        if not isinstance(config, dict) or config.get("class_name") != _CONFIG_NAME or "vocab" not in config:
            raise ValueError(f"not a TextCorpus config: {config!r:.200}")
        return cls(text, vocab=config["vocab"], dtype=config.get("dtype", "int32"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TextCorpus):
            return NotImplemented
        return self.vocab == other.vocab and self.dtype == other.dtype and np.array_equal(self.ids, other.ids)

    __hash__ = None  # mutable-looking container with array data: not hashable

    def __repr__(self) -> str:
        shown = "".join(self.vocab[:30]) + ("..." if self.vocab_size > 30 else "")
        return f"TextCorpus(chars={len(self)}, vocab_size={self.vocab_size}, vocab={shown!r}, {self.dtype.name})"
