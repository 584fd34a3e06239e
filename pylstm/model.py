"""Sequential: a stack of layers with Keras' compile / fit / evaluate / predict.

All weights live in one flat buffer (each layer's ``params`` are views of it),
and all gradients in another (each layer's backward writes its ``grads`` into
views of it), so the optimizer updates every weight with a dozen NumPy calls and
a gradient norm is one dot product per layer.  The training loop is in ``_training.py``,
sampling in ``_generate.py``.
"""
from __future__ import annotations

import functools
import numbers
import threading
from typing import Any, Callable, Iterable

import numpy as np

from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optim as _optim
from .history import History
from .layers import LSTM, Dense, Embedding, Layer

__all__ = ["Sequential", "NonFiniteLossError", "History"]

from ._training import NonFiniteLossError  # noqa: E402  (re-exported)

_PREDICT_BATCH = 4096  # rows per inference chunk when no batch_size is given


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}")
    return int(seed)



# A model holds per-batch state (each layer's cache, carried states, optimizer
# moments): two threads using one model at once would corrupt it silently.
# So a model is used by one thread at a time; nested calls from that thread
# (fit -> evaluate) are fine, another thread gets a clear RuntimeError.
_guard_lock = threading.Lock()


def _one_thread_at_a_time(method: Callable) -> Callable:
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        me = threading.get_ident()
        with _guard_lock:
            owner = self.__dict__.get("_busy_owner")
            if owner is not None and owner != me:
                raise RuntimeError(
                    f"Sequential.{method.__name__}: this model is already in use in another thread (a model "
                    "trains, evaluates, predicts and generates in one thread at a time; use one model per thread)")
            self._busy_owner = me
            self._busy_depth = self.__dict__.get("_busy_depth", 0) + 1
        try:
            return method(self, *args, **kwargs)
        finally:
            with _guard_lock:
                self._busy_depth -= 1
                if self._busy_depth == 0:
                    self._busy_owner = None

    return guarded

class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
    input_shape : tuple, optional
        Per-sample input shape: (T, features) for sequences (T may be None: any
        length), (T,) for token ids, (features,) for vectors.  Inferred from the
        first batch when omitted.
    seed : int, optional
        Seeds the weight initialization (and, unless ``fit(seed=)`` is given,
        shuffling and dropout).
    dtype : {"float32", "float64"}
    name : str, optional

    Examples
    --------
    >>> model = Sequential([LSTM(40, return_sequences=True), LSTM(40), Dense(2, activation="softmax")],
    ...                    input_shape=(7, 1), seed=0)
    >>> model.compile(loss="sparse_categorical_crossentropy", optimizer=optim.Adam(lr=1e-2), metrics=["accuracy"])
    """

    def __init__(self, layers: Iterable[Layer] | None = None, input_shape: tuple | None = None,
                 seed: int | None = None, dtype: Any = "float32", name: str | None = None):
        self.layers: list[Layer] = []
        self.seed = _check_seed(seed)
        self.dtype = _layers._float_dtype(dtype)
        self.name = name or "sequential"
        self._input_shape = None if input_shape is None else self._check_input_shape(input_shape)
        self.optimizer: _optim.Optimizer | None = None
        self.loss: _losses.Loss | None = None
        self.metrics: list[_metrics.Metric] = []
        self._fused = False
        self.history = History()
        self.stop_training = False
        self._vocab: tuple[str, ...] | None = None
        self._stateful_batch_size: int | None = None
        self._flat: np.ndarray | None = None
        self._flat_grad: np.ndarray | None = None
        self._rng = np.random.default_rng(None if self.seed is None else [self.seed, 1])
        self._val = None  # validation data during fit
        self._current_epoch = 0
        for layer in layers or []:
            self.add(layer)
        if self._input_shape is not None and self.layers:
            self.build(self._input_shape)

    # ------------------------------------------------------------------ structure
    @staticmethod
    def _check_input_shape(shape: Any) -> tuple:
        try:
            shape = tuple(shape)
        except TypeError:
            raise TypeError(f"input_shape must be a tuple like (T, features), got {shape!r}") from None
        for d in shape:
            if d is not None and (isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1):
                raise ValueError(f"input_shape entries must be ints >= 1 or None, got {shape!r}")
        if not 1 <= len(shape) <= 2:
            raise ValueError(f"input_shape is per sample, (T, features), (T,) or (features,); got {shape!r}")
        return tuple(None if d is None else int(d) for d in shape)

    def add(self, layer: Layer) -> None:
        """Append a layer (it gets a unique name within the model if it has none)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes pylstm.layers.Layer objects, got {type(layer).__name__}")
        if any(layer is other for other in self.layers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        taken = {l.name for l in self.layers}
        if layer._name is None or layer.name in taken:
            base, k, name = type(layer).__name__.lower(), 0, type(layer).__name__.lower()
            if layer._name is not None:
                base = name = layer._name
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            layer.name = name
        self.layers.append(layer)
        self._flat = None  # re-flattened (new layer built) at the next use

    @property
    def built(self) -> bool:
        return self._flat is not None

    @property
    def input_shape(self) -> tuple | None:
        return self._input_shape

    def build(self, input_shape: tuple) -> None:
        """Build every layer for this per-sample input shape and move the weights into one buffer.

        Raises
        ------
        ValueError
            An impossible stack (e.g. an LSTM after a layer that outputs vectors), naming the layers.
        """
        if not self.layers:
            raise ValueError("the model has no layers: add some before building it")
        shape = self._check_input_shape(input_shape)
        rng = np.random.default_rng(self.seed)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            ids_input = isinstance(layer, Embedding) or (isinstance(layer, LSTM) and layer.vocab_size is not None)
            if ids_input and i > 0:
                raise ValueError(f"layer {i} ({layer.name}) takes token ids, so it must be the first layer")
            if isinstance(layer, LSTM) and layer.return_state and i != last:
                raise ValueError(f"layer {i} ({layer.name}) has return_state=True: only the last layer may")
            if isinstance(layer, LSTM) and i > 0 and len(shape) != 2:
                prev = self.layers[i - 1]
                raise ValueError(f"layer {i} ({layer.name}) is an LSTM and needs sequences, but layer {i - 1} "
                                 f"({prev.name}) outputs one vector per sample {shape}: give it "
                                 "return_sequences=True")
            if layer.built:
                if layer.dtype != self.dtype:
                    raise TypeError(f"layer {layer.name!r} was built as {layer.dtype}, the model is {self.dtype}")
                if layer.input_shape[-1:] != shape[-1:] or len(layer.input_shape) != len(shape):
                    raise ValueError(f"layer {layer.name!r} was built for input {layer.input_shape}, here it gets "
                                     f"{shape}")
            else:
                layer.build(shape, self.dtype, rng)
            shape = layer.compute_output_shape(shape)
        self._input_shape = self._check_input_shape(input_shape)
        self._flatten()

    def _flatten(self) -> None:
        # One buffer for all weights and one for all gradients (see the module docstring): each layer's
        # params are views of the first, and its backward writes its grads into views of the second.
        total = sum(l.count_params() for l in self.layers)
        flat = _optim._aligned_empty(total, self.dtype)
        flat_grad = _optim._aligned_empty(total, self.dtype)
        flat_grad.fill(0)
        offset = 0
        self._slices: list[tuple[int, int]] = []
        self._param_layers: list[Layer] = []
        self._grad_bindings: list[tuple[Layer, dict[str, np.ndarray]]] = []
        for layer in self.layers:
            views, grad_views = {}, {}
            start = offset
            for key, p in layer._params.items():
                view = flat[offset: offset + p.size].reshape(p.shape)
                view[...] = p
                views[key] = view
                grad_views[key] = flat_grad[offset: offset + p.size].reshape(p.shape)
                offset += p.size
            layer._bind_params(views, grad_views)
            if offset > start:
                self._slices.append((start, offset))
                self._param_layers.append(layer)
                self._grad_bindings.append((layer, grad_views))
        self._flat = flat
        self._flat_grad = flat_grad
        # per-layer 1-D views of the gradient, for the per-step norms (one dot each)
        self._layer_grads = [flat_grad[a:b] for a, b in self._slices]
        self.history.layer_names = [l.name for l in self._param_layers]

    def _ensure_built(self, x_shape: tuple | None = None) -> None:
        if self._flat is not None:
            return
        if self._input_shape is not None:
            self.build(self._input_shape)
        elif x_shape is not None:
            self.build(tuple(x_shape[1:]))
        else:
            raise ValueError("the model is not built: give input_shape= or call fit/predict on data first")

    @property
    def _ids_input(self) -> bool:
        first = self.layers[0] if self.layers else None
        return isinstance(first, Embedding) or (isinstance(first, LSTM) and first.vocab_size is not None)

    @property
    def _stateful_layers(self) -> list[LSTM]:
        return [l for l in self.layers if isinstance(l, LSTM) and l.stateful]

    @property
    def stateful(self) -> bool:
        return bool(self._stateful_layers)

    def output_shape(self, input_shape: tuple | None = None) -> tuple:
        """Per-sample output shape (for ``input_shape``, default the built one)."""
        shape = tuple(input_shape if input_shape is not None else self._input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def count_params(self) -> int:
        return sum(l.count_params() for l in self.layers)

    # ------------------------------------------------------------------ input checks
    def _check_x(self, x: Any, what: str = "x") -> np.ndarray:
        """``x`` as an array the first layer takes (building the model from it if needed).

        Raises
        ------
        ValueError / TypeError
            Wrong rank, feature count or dtype, naming the expected shape.
        """
        x = np.asarray(x)
        if not self.layers:
            raise ValueError("the model has no layers")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{what} must be a numeric array, got dtype {x.dtype}")
        if self._ids_input:
            if x.dtype.kind not in "iu":
                raise TypeError(f"{what}: the first layer ({self.layers[0].name}) takes integer token ids of shape "
                                f"(N, T), got a {x.dtype} array of shape {x.shape}")
            if x.ndim != 2:
                raise ValueError(f"{what} must be token ids of shape (N, T), got shape {x.shape}")
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"{what} must have a batch axis with N >= 1, got shape {x.shape}")
        self._ensure_built(x.shape)
        want = self._input_shape
        if self._ids_input or len(want) == 2:  # sequences: T is free, the features must match
            ok = x.ndim == len(want) + 1 and (len(want) == 1 or want[1] is None or x.shape[2] == want[1])
            expected = "(N, T)" if self._ids_input else f"(N, T, {want[1]})"
        else:  # vectors (N, F)
            ok = x.ndim == 2 and (want[0] is None or x.shape[1] == want[0])
            expected = f"(N, {want[0]})"
        if not ok:
            raise ValueError(f"{what} has shape {x.shape} but the model expects {expected} (input_shape={want})")
        if x.dtype != self.dtype and not self._ids_input:
            x = x.astype(self.dtype)  # once here, not in every kernel call
        return x

    def _full_output_shape(self, x_shape: tuple) -> tuple:
        return (x_shape[0],) + self.output_shape(x_shape[1:])

    # ------------------------------------------------------------------ compile
    def compile(self, loss: Any, optimizer: Any = "adam", metrics: list | None = None) -> None:
        """Set the loss, optimizer and metrics.

        A final ``Dense(activation="sigmoid")`` with ``binary_crossentropy``, or
        ``"softmax"`` with a categorical cross-entropy, is fused into one stable
        computation on the logits.  ``from_logits=True`` losses need a linear
        final layer.

        Raises
        ------
        ValueError
            Unknown names, or a cross-entropy paired with the wrong final activation.
        """
        if not self.layers:
            raise ValueError("add layers before compile")
        loss = _losses.get(loss)
        opt = _optim.get(optimizer)
        mets = [_metrics.get(m) for m in (metrics or [])]
        self._fused = self._check_pairing(loss)
        self.loss, self.optimizer, self.metrics = loss, opt, mets

    def _check_pairing(self, loss: _losses.Loss) -> bool:
        """Whether the last Dense's activation is fused into the loss; ValueError for bad pairs."""
        if loss.activation is None:
            return False
        last = self.layers[-1]
        what = loss.name
        if isinstance(last, Dense):
            if loss.from_logits:
                if last.activation is not None:
                    raise ValueError(
                        f"{what} with from_logits=True expects logits, but the final Dense has activation="
                        f"{last.activation!r}: use activation=None, or from_logits=False with activation="
                        f"{loss.activation!r}")
                return False
            if last.activation != loss.activation:
                raise ValueError(
                    f"{what} needs a final Dense(activation={loss.activation!r}) (fused into a stable "
                    f"{loss.activation} + cross-entropy), or activation=None with from_logits=True; the final "
                    f"Dense has activation={last.activation!r}")
            return True
        if loss.from_logits:
            return False
        raise ValueError(f"{what} needs a final Dense(activation={loss.activation!r}) (or a linear final layer with "
                         f"from_logits=True); the model ends in {type(last).__name__}")

    def get_compile_config(self) -> dict | None:
        """``{"loss": {...}, "metrics": [...]}`` (without the optimizer), or None when not compiled."""
        if self.loss is None:
            return None
        mets = [m.name if type(m) in _metrics._BY_CLASS.values() else m.get_config() for m in self.metrics]
        return {"loss": self.loss.get_config(), "metrics": mets}

    def compile_from_config(self, config: dict, optimizer: Any, custom_objects: dict | None = None) -> None:
        """``compile`` from ``get_compile_config()`` and an optimizer."""
        loss = _losses.get(config["loss"], custom_objects)
        mets = [_metrics.get(m, custom_objects) for m in config.get("metrics", [])]
        self.compile(loss=loss, optimizer=optimizer, metrics=mets)

    def _require_compiled(self, what: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"call compile(loss=..., optimizer=...) before {what}")

    # ------------------------------------------------------------------ forward / backward
    def _forward(self, x: np.ndarray, training: bool, logits: bool, use_carried: bool) -> Any:
        out = x
        last = len(self.layers) - 1
        rng = self._rng if training else None
        for i, layer in enumerate(self.layers):
            if isinstance(layer, LSTM):
                out = layer.forward(out, training=training, rng=rng, use_carried=use_carried)
            elif i == last and logits and isinstance(layer, Dense):
                out = layer.forward(out, training=training, rng=rng, logits=True)
            else:
                out = layer.forward(out, training=training, rng=rng)
        return out

    def _backward(self, dout: np.ndarray) -> None:
        """Backward through every layer into ``_flat_grad``."""
        layers = self.layers
        for i in range(len(layers) - 1, -1, -1):
            dout = layers[i].backward(dout, need_dx=i > 0)
        # The built-in layers wrote their grads into their views of _flat_grad already; a layer that made
        # arrays of its own (a custom layer unaware of _grad_views) has them copied in.
        for layer, views in self._grad_bindings:
            grads = layer.grads
            for key, view in views.items():
                g = grads[key]
                if g is not view:
                    np.copyto(view, np.reshape(g, view.shape))

    @_one_thread_at_a_time
    def __call__(self, x: Any, training: bool = False) -> Any:
        """Forward pass on one batch (``training=True``: with dropout); a stateful model uses and updates its
        carried state, unlike ``predict``."""
        x = self._check_x(x)
        self._check_stateful_batch(x.shape[0], fix=True)
        return self._forward(x, training=bool(training), logits=False, use_carried=True)

    # ------------------------------------------------------------------ stateful
    def _check_stateful_batch(self, B: int, fix: bool, where: str = "") -> None:
        if not self.stateful:
            return
        if self._stateful_batch_size is None:
            if fix:
                self._stateful_batch_size = int(B)
            return
        if B != self._stateful_batch_size:
            raise ValueError(f"stateful model: the batch size is fixed at {self._stateful_batch_size} by the first "
                             f"batch, got a batch of {B}{where}")

    def reset_states(self) -> None:
        """Zero the carried state of every stateful LSTM (the batch size stays fixed)."""
        for layer in self._stateful_layers:
            layer.reset_states()

    def get_states(self) -> list:
        """Carried ``(h, c)`` per stateful LSTM layer (copies), None where nothing is carried yet."""
        return [None if l.states is None else (l.states[0].copy(), l.states[1].copy()) for l in self._stateful_layers]

    def set_states(self, states: list) -> None:
        """Restore ``get_states()``'s list.

        Raises
        ------
        ValueError
            Wrong count or shapes.
        """
        layers = self._stateful_layers
        states = list(states)
        if len(states) != len(layers):
            raise ValueError(f"the model has {len(layers)} stateful LSTM layers, got {len(states)} states")
        new = []
        for layer, s in zip(layers, states):
            if s is None:
                new.append(None)
                continue
            h, c = (np.array(a, dtype=self.dtype) for a in s)
            if h.ndim != 2 or h.shape[1] != layer.units or c.shape != h.shape:
                raise ValueError(f"state of layer {layer.name!r}: expected h and c of shape (B, {layer.units}), "
                                 f"got {h.shape} and {c.shape}")
            if self._stateful_batch_size is not None and h.shape[0] != self._stateful_batch_size:
                raise ValueError(f"state of layer {layer.name!r} has batch size {h.shape[0]}, the model's is "
                                 f"{self._stateful_batch_size}")
            new.append((h, c))
        for layer, s in zip(layers, new):
            layer.states = s
        if self._stateful_batch_size is None:
            sizes = {s[0].shape[0] for s in new if s is not None}
            if sizes:
                self._stateful_batch_size = sizes.pop()

    # ------------------------------------------------------------------ training
    @_one_thread_at_a_time
    def fit(self, x: Any, y: Any = None, batch_size: int = 32, epochs: int = 1, verbose: int = 1,
            validation_data: Any = None, shuffle: bool = True, seed: int | None = None,
            callbacks: list | None = None, sample_weight: Any = None) -> History:
        """Train.

        Parameters
        ----------
        x, y : arrays
            Inputs (N, T, F) / (N, T) ids / (N, F) and labels (see ``losses``).  Or
            ``x`` an iterable of ``(x, y)`` or ``(x, y, sample_weight)`` batches
            (re-iterable for several epochs, e.g. ``TextCorpus.batches``) and ``y`` None.
        batch_size : int
            Rows per batch (arrays only).  A stateful model needs N divisible by it.
        epochs : int
        verbose : {0, 1, 2}
            0 silent, 1 a progress bar per epoch (loss, metrics, ETA), 2 one line per epoch.
        validation_data : tuple (x, y) or (x, y, sample_weight), or an iterable of batches
            Evaluated after every epoch (fresh state for a stateful model): ``val_*`` logs.
        shuffle : bool
            Shuffle the rows every epoch (arrays only; never for a stateful model).
        seed : int, optional
            Reseed shuffling and dropout; same seeds give an identical History.
        callbacks : list of Callback
        sample_weight : array (N,) or (N, T), optional

        Returns
        -------
        History
            ``model.history``, which accumulates over ``fit`` calls.

        Raises
        ------
        NonFiniteLossError
            On the first NaN/inf loss or gradient, naming epoch and batch; the
            weights are those from before that batch.
        """
        from ._training import run_fit

        self._require_compiled("fit")
        return run_fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                       validation_data=validation_data, shuffle=shuffle, seed=seed, callbacks=callbacks,
                       sample_weight=sample_weight)

    @_one_thread_at_a_time
    def train_on_batch(self, x: Any, y: Any, sample_weight: Any = None) -> dict[str, float]:
        """One optimizer step on one batch; returns the batch's loss and metrics (logged in ``history.steps``)."""
        from ._training import prepare_batch, train_step

        self._require_compiled("train_on_batch")
        xb, yb, wb = prepare_batch(self, x, y, sample_weight)
        logs = train_step(self, xb, yb, wb, epoch=len(self.history.epoch), batch=0)
        return logs

    def _has_validation(self) -> bool:
        return self._val is not None

    def _validation_logs(self) -> dict[str, float]:
        from ._training import evaluate_data

        return {"val_" + k: v for k, v in evaluate_data(self, self._val).items()}

    # ------------------------------------------------------------------ inference
    @_one_thread_at_a_time
    def evaluate(self, x: Any, y: Any = None, batch_size: int | None = None, sample_weight: Any = None,
                 verbose: int = 0) -> dict[str, float]:
        """Loss and metrics on data (arrays, or an iterable of batches), from a fresh state.

        A stateful model's carried state is left alone (the evaluation carries its
        own across the batches of this call).
        """
        from ._training import evaluate_data, make_data

        self._require_compiled("evaluate")
        if batch_size is None:
            batch_size = None if self.stateful else _PREDICT_BATCH
        data = make_data(self, x, y, sample_weight, batch_size, for_eval=True)
        return evaluate_data(self, data)

    @_one_thread_at_a_time
    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """Outputs for ``x`` (probabilities for a sigmoid/softmax head), from a fresh state.

        A stateful model predicts all rows as one batch unless ``batch_size`` is
        given (then consecutive batches continue each other's rows), and leaves
        its carried state alone.  With a final ``return_state`` LSTM, returns
        ``(out, h_T, c_T)``.
        """
        x = self._check_x(x)
        N = x.shape[0]
        if batch_size is None:
            batch_size = N if self.stateful else _PREDICT_BATCH
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        with self._fresh_states():
            outs = [self._forward(x[i: i + batch_size], training=False, logits=False, use_carried=True)
                    for i in range(0, N, batch_size)]
        if isinstance(outs[0], tuple):
            return tuple(np.concatenate(parts) for parts in zip(*outs))
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def _fresh_states(self):
        """Context: stateful layers start from zeros and get their carried state back afterwards."""
        model = self

        class _Fresh:
            def __enter__(self):
                self.saved = [l.states for l in model._stateful_layers]
                for l in model._stateful_layers:
                    l.states = None

            def __exit__(self, *exc):
                for l, s in zip(model._stateful_layers, self.saved):
                    l.states = s
                return False

        return _Fresh()

    @_one_thread_at_a_time
    def generate(self, prompt: Any, steps: int, temperature: float = 1.0, top_k: int | None = None,
                 greedy: bool = False, seed: int | None = None) -> Any:
        """Continue ``prompt`` by ``steps`` sampled symbols, one ``lstm_step`` per layer per symbol.

        Parameters
        ----------
        prompt : str, or int array (T0,) / (B, T0)
            Token ids, or a string encoded with ``model.vocab``.
        steps : int
        temperature : float
            Divides the logits (0 means greedy).
        top_k : int, optional
            Sample only among the k most likely symbols.
        greedy : bool
            Always take the most likely symbol.
        seed : int, optional

        Returns
        -------
        str or ndarray
            The ``steps`` new symbols (not the prompt): a str for a str prompt, else ids
            (steps,) or (B, steps).
        """
        from ._generate import generate

        return generate(self, prompt, steps, temperature=temperature, top_k=top_k, greedy=greedy, seed=seed)

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> list[np.ndarray]:
        """Copies of all weights: layer order, then each layer's ``params`` order."""
        self._ensure_built()
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: list[Any]) -> None:
        """Set all weights from ``get_weights()``'s list (cast to the model's dtype).

        Raises
        ------
        ValueError
            Wrong count, or a wrong shape naming the layer and weight.
        """
        self._ensure_built()
        weights = list(weights)
        counts = [len(l._params) for l in self.layers]
        if len(weights) != sum(counts):
            detail = ", ".join(f"{l.name}: {n}" for l, n in zip(self.layers, counts) if n)
            raise ValueError(f"the model has {sum(counts)} weight arrays ({detail}), got {len(weights)}")
        k = 0
        for layer, n in zip(self.layers, counts):
            for (key, p), w in zip(layer._params.items(), weights[k: k + n]):
                w = np.asarray(w)
                if w.dtype.kind != "f":
                    raise TypeError(f"layer {layer.name!r} weight {key}: expected a float array, got {w.dtype}")
                if w.shape != p.shape:
                    raise ValueError(f"layer {layer.name!r} weight {key}: expected shape {p.shape}, got {w.shape}")
            k += n
        k = 0
        for layer, n in zip(self.layers, counts):
            layer.set_weights(weights[k: k + n])
            k += n

    # ------------------------------------------------------------------ training position
    @property
    def step(self) -> int:
        """Optimizer updates done so far."""
        return self.optimizer.iterations if self.optimizer is not None else 0

    @step.setter
    def step(self, value: int) -> None:
        if self.optimizer is None:
            raise RuntimeError("compile the model before setting its step")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"step must be an int >= 0, got {value!r}")
        self.optimizer.iterations = int(value)

    def _rng_state(self) -> dict:
        """The state of the generator behind shuffling and dropout (JSON-able, big ints inside)."""
        return {"train": self._rng.bit_generator.state}

    def _set_rng_state(self, state: dict) -> None:
        bg_state = state["train"]
        name = bg_state.get("bit_generator", "PCG64")
        bit_gen = getattr(np.random, name, None)
        if bit_gen is None:
            raise ValueError(f"unknown bit generator {name!r} in the RNG state")
        bg = bit_gen()
        bg.state = bg_state
        self._rng = np.random.Generator(bg)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab(self) -> tuple[str, ...] | None:
        """The symbols of a text model (id k is ``vocab[k]``), used by ``generate`` on strings."""
        return self._vocab

    @vocab.setter
    def vocab(self, value: Any) -> None:
        if value is None:
            self._vocab = None
            return
        if hasattr(value, "vocab") and not isinstance(value, (str, list, tuple)):
            value = value.vocab  # a TextCorpus
        tokens = tuple(value)
        if not tokens or not all(isinstance(t, str) for t in tokens):
            raise TypeError("vocab must be a non-empty str or sequence of str (or a TextCorpus)")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocab must not repeat a symbol")
        self._vocab = tokens

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """JSON-able architecture + compile settings (see ``from_config``)."""
        compile_cfg = self.get_compile_config()
        if compile_cfg is not None:
            compile_cfg = {**compile_cfg, "optimizer": self.optimizer.get_config()}
        return {
            "class_name": "Sequential",
            "name": self.name,
            "layers": [l.get_config() for l in self.layers],
            "input_shape": list(self._input_shape) if self.built else None,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "vocab": list(self._vocab) if self._vocab is not None else None,
            "stateful_batch_size": self._stateful_batch_size,
            "compile": compile_cfg,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Sequential:
        """Rebuild (and build, and compile, when the config says so) a model from ``get_config()``.

        The weights are freshly initialized: use ``set_weights`` to restore them.
        """
        if not isinstance(config, dict) or config.get("class_name", "Sequential") != "Sequential":
            raise ValueError(f"not a Sequential config: {config!r:.200}")
        layers = [_layers.layer_from_config(c, custom_objects) for c in config["layers"]]
        shape = config.get("input_shape")
        model = cls(layers, input_shape=None if shape is None else tuple(shape), seed=config.get("seed"),
                    dtype=config.get("dtype", "float32"), name=config.get("name"))
        model.vocab = config.get("vocab")
        model._stateful_batch_size = config.get("stateful_batch_size")
        compile_cfg = config.get("compile")
        if compile_cfg is not None:
            opt = _optim.optimizer_from_config(compile_cfg["optimizer"], custom_objects)
            model.compile_from_config(compile_cfg, opt, custom_objects)
        return model

    def save(self, path: Any, **kwargs: Any) -> None:
        """Write a checkpoint (see ``pylstm.io.save_model``)."""
        from .io import save_model

        save_model(self, path, **kwargs)

    # ------------------------------------------------------------------ display
    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print the layers, their output shapes and parameter counts."""
        self._ensure_built()
        rows = [("Layer (type)", "Output shape", "Params")]
        shape = self._input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            out = "(None, " + ", ".join("None" if d is None else str(d) for d in shape) + ")"
            rows.append((f"{layer.name} ({type(layer).__name__})", out, f"{layer.count_params():,}"))
        widths = [max(len(r[k]) for r in rows) + 2 for k in range(3)]
        line = "-" * sum(widths)
        fmt = lambda r: f"{r[0]:<{widths[0]}}{r[1]:<{widths[1]}}{r[2]:>{widths[2]}}"  # noqa: E731
        text = [f'Model "{self.name}" ({self.dtype.name}, LSTM backend: {_layers._backend_name()})', line,
                fmt(rows[0]), "=" * sum(widths)]
        text += [fmt(r) for r in rows[1:]]
        text += ["=" * sum(widths), f"Total params: {self.count_params():,}", f"Input shape: (None, " +
                 ", ".join("None" if d is None else str(d) for d in self._input_shape) + ")"]
        if self.loss is not None:
            text.append(f"Loss: {self.loss.name}{' (fused with the final activation)' if self._fused else ''}; "
                        f"optimizer: {self.optimizer!r}")
        (print_fn or print)("\n".join(text))

    def __repr__(self) -> str:
        stack = " → ".join(repr(l) for l in self.layers) or "no layers"
        tail = [self.dtype.name]
        if self.built:
            tail.insert(0, f"input={self._input_shape}")
            tail.append(f"{self.count_params():,} params")
        if self.stateful:
            tail.append("stateful")
        return f"Sequential({stack}; {', '.join(tail)})"
