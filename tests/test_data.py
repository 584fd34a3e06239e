"""pylstm.data: vocabulary, encoding, stream batches for stateful training."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pylstm.data import StreamBatches, TextCorpus, one_hot

TEXT = "the quick brown fox jumps over the lazy dog; THE END.\n" * 7


def test_vocab_is_sorted_unique_chars_and_encoding_round_trips():
    c = TextCorpus(TEXT)
    assert c.vocab == tuple(sorted(set(TEXT)))
    assert c.vocab_size == len(set(TEXT))
    assert len(c) == len(TEXT) and c.ids.shape == (len(TEXT),)
    assert c.ids.dtype == np.int32
    assert c.decode(c.ids) == TEXT == c.text()
    assert c.decode(c.encode("lazy dog")) == "lazy dog"
    assert c.encode("").shape == (0,) and c.decode([]) == ""
    assert [c.vocab[k] for k in c.encode("fox")] == list("fox")


def test_int64_ids_and_explicit_vocab_order():
    c = TextCorpus("abcab", vocab="cba", dtype=np.int64)
    assert c.ids.dtype == np.int64 and c.ids.tolist() == [2, 1, 0, 2, 1]
    assert c.decode(np.array([0, 1, 2], dtype=np.uint8)) == "cba"


@pytest.mark.parametrize("B, T", [(1, 1), (1, 7), (3, 5), (7, 3), (4, 17)])
def test_batches_are_parallel_continuous_streams(B, T):
    c = TextCorpus(TEXT)
    batches = c.batches(B, T)
    assert isinstance(batches, StreamBatches)
    got = list(batches)
    assert len(got) == len(batches) >= 1
    n = (len(TEXT) - 1) // B  # characters per stream
    assert len(got) == n // T
    for x, y in got:
        assert x.shape == y.shape == (B, T) and x.dtype == y.dtype == np.int32
    xs = np.concatenate([x for x, _ in got], axis=1)  # (B, n_used): each row one stream, in order
    ys = np.concatenate([y for _, y in got], axis=1)
    for i in range(B):
        start = i * n
        # row i of batch k+1 continues row i of batch k: the concatenation is a slice of the text
        assert c.decode(xs[i]) == TEXT[start : start + xs.shape[1]]
        assert c.decode(ys[i]) == TEXT[start + 1 : start + 1 + xs.shape[1]]  # y is x shifted by one
    # re-iterable: a second pass (next epoch) gives the same batches
    for (x1, y1), (x2, y2) in zip(got, batches):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_drop_last_false_keeps_a_short_final_batch():
    c = TextCorpus("abcdefghijklmnopq")  # 17 chars, B=2 -> streams of 8; T=3 -> 3+3+2
    full = list(c.batches(2, 3))
    assert [x.shape for x, _ in full] == [(2, 3), (2, 3)]
    kept = list(c.batches(2, 3, drop_last=False))
    assert [x.shape for x, _ in kept] == [(2, 3), (2, 3), (2, 2)]
    assert c.decode(np.concatenate([x for x, _ in kept], 1)[1]) == "ijklmnop"
    assert c.decode(np.concatenate([y for _, y in kept], 1)[1]) == "jklmnopq"


def test_batches_one_hot():
    c = TextCorpus(TEXT)
    x, y = next(iter(c.batches(3, 4, one_hot=True)))
    ids, _ = next(iter(c.batches(3, 4)))
    assert x.shape == (3, 4, c.vocab_size) and x.dtype == np.float32
    np.testing.assert_array_equal(x.argmax(-1), ids)
    np.testing.assert_array_equal(x.sum(-1), 1)


def test_batches_do_not_alias_the_corpus():
    c = TextCorpus(TEXT)
    x, y = next(iter(c.batches(2, 4)))
    x[:] = 0  # a training loop may scribble on its batch
    assert c.decode(c.ids) == TEXT


def test_split_keeps_the_vocabulary_and_the_tail():
    c = TextCorpus(TEXT + "Z")  # "Z" only in the tail
    head, tail = c.split(0.9)
    assert head.vocab == tail.vocab == c.vocab
    assert head.text() + tail.text() == TEXT + "Z"
    assert len(head) == round(0.9 * len(c))
    assert "Z" in tail.text() and list(tail.batches(2, 3))


def test_config_round_trip_is_json():
    c = TextCorpus(TEXT, dtype=np.int64)
    cfg = json.loads(json.dumps(c.to_config()))
    v = TextCorpus.from_config(cfg)
    assert v.vocab == c.vocab and v.dtype == c.dtype and len(v) == 0
    assert v.decode(c.ids[:20]) == TEXT[:20]
    assert TextCorpus.from_config(cfg, TEXT) == c


def test_one_hot():
    ids = np.array([[0, 2], [1, 1]])
    oh = one_hot(ids, 3, np.float64)
    assert oh.shape == (2, 2, 3) and oh.dtype == np.float64
    np.testing.assert_array_equal(oh[0, 1], [0, 0, 1])
    np.testing.assert_array_equal(oh.argmax(-1), ids)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot([0, 3], 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot([-1], 3)
    with pytest.raises(TypeError, match="integer"):
        one_hot([0.5], 3)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: TextCorpus(""), ValueError, "empty"),
        (lambda: TextCorpus(b"bytes"), TypeError, "text must be a str"),
        (lambda: TextCorpus("abc", vocab="ab"), ValueError, "not in the vocabulary: 'c'"),
        (lambda: TextCorpus("abc", vocab="abca"), ValueError, "repeat"),
        (lambda: TextCorpus("abc", vocab=["ab", "c"]), TypeError, "single characters"),
        (lambda: TextCorpus("abc", vocab=""), ValueError, "empty"),
        (lambda: TextCorpus("abc", dtype=np.float32), TypeError, "int32 or int64"),
        (lambda: TextCorpus("abc").encode("abd"), ValueError, "'d'"),
        (lambda: TextCorpus("abc").decode([0, 3]), ValueError, r"\[0, 3\)"),
        (lambda: TextCorpus("abc").decode([[0, 1]]), ValueError, "1-D"),
        (lambda: TextCorpus("abc").decode([0.0]), TypeError, "integers"),
        (lambda: TextCorpus("abc").batches(0, 2), ValueError, "batch_size must be >= 1"),
        (lambda: TextCorpus("abc").batches(1, 2.0), TypeError, "seq_len must be a positive int"),
        (lambda: TextCorpus("abcdef").batches(2, 3), ValueError, "text too short"),
        (lambda: TextCorpus("abc").split(1.0), ValueError, r"frac must be a number in \(0, 1\)"),
        (lambda: TextCorpus("ab").split(0.1), ValueError, "empty part"),
        (lambda: TextCorpus.from_config({"vocab": "ab"}), ValueError, "not a TextCorpus config"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_repr():
    assert repr(TextCorpus("hello")) == "TextCorpus(chars=5, vocab_size=4, vocab='ehlo', int32)"
    assert "batches=2" in repr(TextCorpus(TEXT).batches(50, 3))
