"""generate(): one lstm_step per layer per symbol, the same symbols as re-running the prefix,
seeded sampling, top_k / temperature / greedy, strings through model.vocab, and the errors."""
from __future__ import annotations

import numpy as np
import pytest

import pylstm as pl
from pylstm import kernels, layers
from pylstm._generate import sample

V = 7


def _char_model(first=None, stateful=False, seed=0, head="softmax"):
    first = first or layers.LSTM(12, vocab_size=V, return_sequences=True, stateful=stateful)
    return pl.Sequential([first, layers.LSTM(10), layers.Dense(V, activation=head)], seed=seed)


def _built(model):
    model.build((None,))  # token ids of any length
    # sharper distributions than the default init, so that greedy and sampling differ visibly
    model.set_weights([w * 3 for w in model.get_weights()])
    return model


def _naive_greedy(model, prompt, steps):
    """Re-run the whole prefix for every symbol (what generate must not do, and must agree with)."""
    seq = list(prompt)
    for _ in range(steps):
        p = model.predict(np.array([seq]))
        seq.append(int(p[0].argmax()))
    return seq[len(prompt):]


def test_greedy_equals_rerunning_the_prefix():
    model = _built(_char_model())
    prompt = [1, 4, 2, 2]
    out = model.generate(np.array(prompt), steps=8, greedy=True)
    assert out.shape == (8,) and out.dtype.kind == "i"
    assert out.tolist() == _naive_greedy(model, prompt, 8)


def test_one_kernel_step_per_layer_per_symbol(monkeypatch):
    model = _built(_char_model())
    calls = {"forward": 0, "forward_ids": 0, "step": 0, "step_ids": 0}
    for name, key in (("lstm_forward", "forward"), ("lstm_forward_ids", "forward_ids"),
                      ("lstm_step", "step"), ("lstm_step_ids", "step_ids")):
        original = getattr(kernels, name)

        def counted(*a, _f=original, _k=key, **kw):
            calls[_k] += 1
            return _f(*a, **kw)

        monkeypatch.setattr(kernels, name, counted)
    model.generate(np.array([[1, 2, 3], [3, 2, 1]]), steps=10, seed=0)
    # the prompt once per layer, then (steps - 1) single steps per layer (the last symbol needs no step)
    assert calls == {"forward": 1, "forward_ids": 1, "step": 9, "step_ids": 9}


def test_seeds_top_k_temperature_greedy():
    model = _built(_char_model())
    prompt = np.array([0, 1])
    a = model.generate(prompt, 30, seed=3)
    np.testing.assert_array_equal(a, model.generate(prompt, 30, seed=3))
    assert not np.array_equal(a, model.generate(prompt, 30, seed=4))
    greedy = model.generate(prompt, 30, greedy=True)
    np.testing.assert_array_equal(model.generate(prompt, 30, top_k=1, seed=9), greedy)
    np.testing.assert_array_equal(model.generate(prompt, 30, temperature=0.0, seed=9), greedy)


def test_sample_distribution_and_top_k():
    rng = np.random.default_rng(0)
    logits = np.tile(np.log([0.1, 0.2, 0.3, 0.4]), (40000, 1))
    freq = np.bincount(sample(logits, 1.0, None, False, rng), minlength=4) / 40000
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    freq = np.bincount(sample(logits, 1.0, 2, False, rng), minlength=4) / 40000
    np.testing.assert_allclose(freq, [0, 0, 3 / 7, 4 / 7], atol=0.01)
    freq = np.bincount(sample(logits, 0.5, None, False, rng), minlength=4) / 40000  # p² renormalised
    np.testing.assert_allclose(freq, np.array([1, 4, 9, 16]) / 30, atol=0.01)


def test_batch_prompts_match_single_prompts():
    model = _built(_char_model())
    batch = model.generate(np.array([[1, 2, 3], [4, 4, 0]]), 6, greedy=True)
    assert batch.shape == (2, 6)
    np.testing.assert_array_equal(batch[1], model.generate(np.array([4, 4, 0]), 6, greedy=True))


def test_strings_through_the_vocabulary():
    model = _built(_char_model())
    with pytest.raises(ValueError, match="model.vocab"):
        model.generate("ab", 3)
    model.vocab = "abcdefg"
    text = model.generate("abc", 12, greedy=True)
    assert isinstance(text, str) and len(text) == 12 and set(text) <= set("abcdefg")
    ids = model.generate(np.array([0, 1, 2]), 12, greedy=True)
    assert text == "".join("abcdefg"[k] for k in ids)
    with pytest.raises(ValueError, match="not in model.vocab: 'z'"):
        model.generate("abz", 3)


def test_one_hot_and_embedding_models():
    ids_model = _built(_char_model())
    onehot = pl.Sequential([layers.LSTM(12, return_sequences=True), layers.LSTM(10),
                            layers.Dense(V, activation="softmax")], input_shape=(None, V), seed=0)
    onehot.set_weights(ids_model.get_weights())
    prompt = np.array([3, 1, 4])
    np.testing.assert_array_equal(onehot.generate(prompt, 9, seed=1), ids_model.generate(prompt, 9, seed=1))
    emb = _built(_char_model(first=layers.Embedding(V, 4)))
    assert emb.generate(prompt, 5, seed=0).shape == (5,)


def test_stateful_carried_state_untouched():
    model = _built(_char_model(stateful=True))
    model(np.array([[1, 2, 3]]))
    before = model.get_states()
    model.generate(np.array([2, 2]), 5, seed=0)
    for (h, c), (h2, c2) in zip(before, model.get_states()):
        np.testing.assert_array_equal(h, h2)
        np.testing.assert_array_equal(c, c2)


def test_generate_errors():
    model = _built(_char_model(head="sigmoid"))
    with pytest.raises(ValueError, match="softmax"):
        model.generate(np.array([1]), 3)
    small = pl.Sequential([layers.LSTM(4, vocab_size=V), layers.Dense(3, activation="softmax")], seed=0)
    with pytest.raises(ValueError, match="3 units but the input takes 7 symbols"):
        small.generate(np.array([1, 2]), 3)
    model = _built(_char_model())
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        model.generate(np.array([1, 9]), 3)
    with pytest.raises(ValueError, match="at least one symbol"):
        model.generate(np.zeros(0, int), 3)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(np.array([1]), 3, top_k=0)
