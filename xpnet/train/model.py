"""``Model``: a network with its settings, optimizer state and history, trained by ``fit``.

This is the object users hold. It places data on the chosen device once, runs the epoch loop with
its safety checks (divergence, chance-level accuracy), and keeps everything a warm start or a saved
file needs: repeated ``fit`` calls continue the same run as if it had never stopped.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import array_api_compat
import numpy as np

from xpnet.arrays import streams
from xpnet.arrays.backend import Backend, array_namespace, select, to_numpy
from xpnet.arrays.precision import tf32_matmuls
from xpnet.errors import TrainingDiverged, XpnetError, XpnetWarning
from xpnet.io import persistence
from xpnet.nn import losses
from xpnet.nn.network import Network
from xpnet.train import loop, memory
from xpnet.train.callbacks import NEEDS_VALIDATION, Callback, EarlyStopping
from xpnet.train.config import TrainConfig

# Epochs after which accuracy still at chance level triggers a warning.
CHANCE_LEVEL_EPOCHS = 3


class Model:
    """A multi-layer perceptron trainer.

    >>> model = Model(hidden=[64], epochs=10)           # settings: see TrainConfig
    >>> history = model.fit(x_train, y_train, validation_data=(x_test, y_test))
    >>> model.evaluate(x_test, y_test)["accuracy"]
    """

    def __init__(self, config: TrainConfig | None = None, *, device="auto", **settings):
        config = config or TrainConfig()
        self.config = config.replace(**settings) if settings else config
        self.device = device
        self.backend: Backend | None = None
        self.network: Network | None = None
        self.optimizer = self.config.make_optimizer()
        self.history: list[dict] = []
        self.n_classes: int | None = None
        self.early_stopping = EarlyStopping(self.config.early_stopping) if self.config.early_stopping else None
        # Set while an epoch is under way (or loaded from a mid-epoch checkpoint): where it stands.
        self.progress: loop.EpochProgress | None = None

    @property
    def classify(self) -> bool:
        return self.config.loss == "cross_entropy"

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @property
    def dtype(self):
        return getattr(self.backend.xp, self.config.dtype)

    # -- training ---------------------------------------------------------------------------

    def fit(
        self,
        x,
        y,
        *,
        validation_data: tuple | None = None,
        epochs: int | None = None,
        callbacks: Sequence[Callback] = (),
        n_classes: int | None = None,
    ) -> list[dict]:
        """Train for ``epochs`` more epochs (default: ``config.epochs``); return the full history.

        ``x`` is ``(samples, features)``; ``y`` holds integer class labels ``0..K-1`` or one-hot rows
        (or float targets with ``loss="mse"``). Arrays may come from any array-API library; they are
        copied to the model's device once. ``n_classes`` fixes K up front when ``y`` may not show every
        class yet (incremental training on chunks of data).
        """
        epochs = self.config.epochs if epochs is None else int(epochs)
        if epochs < 1:
            raise XpnetError(f"epochs must be a positive integer, got {epochs}")
        if n_classes is not None:
            self._expect_classes(int(n_classes))
        self._choose_backend(x)
        with self.backend.active(), tf32_matmuls(self.backend, self.config.tf32):
            self._fit(x, y, validation_data, epochs, callbacks)
        return self.history

    def _fit(self, x, y, validation_data, epochs: int, callbacks: Sequence[Callback]) -> None:
        x, y = self._prepare(x, y, "training")
        if validation_data is not None:
            x_val, y_val = self._prepare(*validation_data, "validation")
        elif self.config.val_split:
            x, y, x_val, y_val = self._split_validation(x, y)
        else:
            x_val = y_val = None
        if x_val is not None and x_val.shape[1] != x.shape[1]:
            raise XpnetError(
                f"validation inputs have {x_val.shape[1]} features but the training inputs have {x.shape[1]}"
            )
        if not self.classify:
            self._check_target_widths(y, y_val)
        # Early stopping decides first, so the callbacks after it (checkpoints) record its decision.
        callbacks = [self.early_stopping, *callbacks] if self.early_stopping else list(callbacks)
        if x_val is None and any(isinstance(callback, EarlyStopping) for callback in callbacks):
            raise XpnetError(NEEDS_VALIDATION)  # before an epoch is spent
        if self.network is None:
            evaluation_rows = 0 if x_val is None else x_val.shape[0]
            self._build(x.shape[1], self.n_classes or self._n_outputs(y, y_val), evaluation_rows)
        elif x.shape[1] != self.network.n_inputs:
            raise XpnetError(f"x has {x.shape[1]} features but the model was built for {self.network.n_inputs}")
        self._warn_if_schedule_ends(epochs)
        self._run_epochs(x, y, x_val, y_val, epochs, callbacks)

    def _expect_classes(self, n_classes: int):
        if not self.classify:
            raise XpnetError("n_classes applies to classifiers (loss='cross_entropy'), not to loss='mse'")
        if n_classes < 1:
            raise XpnetError(f"n_classes must be a positive integer, got {n_classes}")
        if self.network is None:
            self.n_classes = n_classes
        elif n_classes != self.n_classes:
            raise XpnetError(f"the model was built for {self.n_classes} classes, not n_classes={n_classes}")

    def _run_epochs(self, x, y, x_val, y_val, epochs, callbacks):
        xp = self.backend.xp
        loss_function = losses.get(self.config.loss)
        schedule = self.config.make_schedule()
        n_batches = len(loop.batch_bounds(x.shape[0], self.config.batch_size))
        input_scale = max(float(xp.max(x)), -float(xp.min(x)))  # max |x| without an |x| copy of the data
        for callback in callbacks:
            callback.on_train_begin(self, epochs)
        for _ in range(epochs):
            epoch = self.epochs_done
            if self.progress is None or self.progress.epoch != epoch:
                self.progress = loop.EpochProgress(epoch)
            lr = schedule.lr(self.config.lr, epoch)
            for callback in callbacks:
                callback.on_epoch_begin(epoch + 1, n_batches)
            before = self._snapshot()
            started = time.perf_counter()
            train_loss, train_correct = loop.train_epoch(
                self.network,
                self.optimizer,
                loss_function,
                x,
                y,
                lr=lr,
                batch_size=self.config.batch_size,
                order=streams.RandomStream(self.backend, self.config.seed, streams.SHUFFLE, epoch).permutation(
                    x.shape[0]
                ),
                dropout_rng=streams.RandomStream(self.backend, self.config.seed, streams.DROPOUT, epoch),
                classify=self.classify,
                on_batch_end=_batch_hook(callbacks),
                progress=self.progress,
            )
            self.progress = None
            record = {"epoch": epoch + 1, "train_loss": float(train_loss)}
            record["seconds"] = time.perf_counter() - started
            record["train_accuracy"] = _fraction(train_correct, x.shape[0])
            if x_val is not None:
                val_loss, val_correct = loop.evaluate(self.network, loss_function, x_val, y_val, classify=self.classify)
                record["val_loss"] = float(val_loss)
                record["val_accuracy"] = _fraction(val_correct, x_val.shape[0])
            if not (math.isfinite(record["train_loss"]) and math.isfinite(self._final_loss(record, x, y))):
                self._restore(before)
                raise TrainingDiverged(_divergence_message(epoch + 1, lr, input_scale, self.config))
            record["lr"] = lr
            self.history.append(record)
            self._warn_if_at_chance_level(record, input_scale)
            stop = [callback.on_epoch_end(record) for callback in callbacks]
            if any(stop):
                break
        for callback in callbacks:
            callback.on_train_end(self)

    def _final_loss(self, record, x, y) -> float:
        """The loss under the epoch's final weights, which its training loss (summed before each step) never
        saw: the last step can break them. The validation loss where there is one, else one batch's."""
        if "val_loss" in record:
            return record["val_loss"]
        rows = min(x.shape[0], self.config.batch_size)
        loss, _ = loop.evaluate(
            self.network, losses.get(self.config.loss), x[:rows, ...], y[:rows, ...], classify=False
        )
        return float(loss)

    def _warn_if_schedule_ends(self, epochs: int):
        last_epoch = self.epochs_done + epochs
        if self.config.schedule == "cosine" and last_epoch > self.config.epochs:
            warnings.warn(
                f"the cosine schedule spans epochs=={self.config.epochs}, so epochs {self.config.epochs + 1} to "
                f"{last_epoch} train at learning rate 0; raise epochs in the settings to stretch the schedule",
                XpnetWarning,
                stacklevel=3,
            )

    def _warn_if_at_chance_level(self, record, input_scale):
        # With a single class there is nothing to learn and no chance level to fall to.
        if not self.classify or self.n_classes < 2 or record["epoch"] != CHANCE_LEVEL_EPOCHS:
            return
        chance = 1.0 / self.n_classes
        # Below 1.5x chance, and never more than 5 points above it: 67% on two classes is learning, slowly.
        if record["train_accuracy"] < min(1.5 * chance, chance + 0.05):
            warnings.warn(
                _chance_level_message(record, chance, input_scale, self.config),
                XpnetWarning,
                stacklevel=4,
            )

    def _snapshot(self):
        optimizer_state = {
            name: [array_namespace(a).asarray(a, copy=True) for a in arrays]
            for name, arrays in self.optimizer.state.items()
        }
        return self.network.copy_parameters(), optimizer_state, self.optimizer.steps

    def _restore(self, snapshot):
        parameters, self.optimizer.state, self.optimizer.steps = snapshot
        self.network.set_parameters(parameters)

    # -- inference ---------------------------------------------------------------------------

    def predict(self, x):
        """Class labels (classification) or outputs (regression), in the namespace ``x`` came in."""
        with self._on_device():
            outputs = self._outputs(x)
            result = self.backend.xp.argmax(outputs, axis=1) if self.classify else outputs
            return self._like_input(result, x)

    def predict_proba(self, x):
        """Class probabilities ``(samples, classes)`` from the softmax of the outputs."""
        if not self.classify:
            raise XpnetError("predict_proba needs a classifier (loss='cross_entropy')")
        with self._on_device():
            return self._like_input(losses.softmax(self._outputs(x)), x)

    def evaluate(self, x, y) -> dict:
        """Mean loss and accuracy on ``(x, y)`` as plain floats."""
        with self._on_device():
            x, y = self._prepare(x, y, "evaluation")
            loss, correct = loop.evaluate(self.network, losses.get(self.config.loss), x, y, classify=self.classify)
            return {"loss": float(loss), "accuracy": _fraction(correct, x.shape[0])}

    def _on_device(self):
        """The trained model's device made current for the block (``Backend.active``)."""
        self._require_trained()
        return self.backend.active()

    def _outputs(self, x):
        return loop.predict_outputs(self.network, self._prepare_inputs(x, "prediction"))

    def _like_input(self, result, x):
        """Hand results back as NumPy when the input was host data and the model is elsewhere."""
        if not self.backend.is_numpy and not _is_foreign_array(x):
            return to_numpy(result)
        return result

    def _require_trained(self):
        if self.network is None:
            raise XpnetError("the model has not been trained yet: call fit first, or xpnet.load a saved model")

    # -- data placement and checks ---------------------------------------------------------------

    def _choose_backend(self, x):
        if self.backend is None:
            use_data = self.device == "auto" and _is_foreign_array(x)
            backend = select(x if use_data else self.device)
            backend.require_float(self.config.dtype)
            self.backend = backend

    def _prepare_inputs(self, x, role: str):
        if self.backend is None:
            self._choose_backend(x)
        x = self.backend.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[0] == 0:
            fix = (
                "for one sample use x.reshape(1, -1)"
                if x.ndim == 1
                else "flatten images first, e.g. x.reshape(len(x), -1)"
            )
            raise XpnetError(
                f"{role} inputs must be a 2-D array (samples, features) with at least one sample, "
                f"got shape {tuple(x.shape)}; {fix}"
            )
        if not bool(self.backend.xp.all(self.backend.xp.isfinite(x))):
            raise XpnetError(f"{role} inputs contain NaN or infinite values: clean or impute them first")
        if self.network is not None and x.shape[1] != self.network.n_inputs:
            raise XpnetError(f"{role} inputs have {x.shape[1]} features but the model expects {self.network.n_inputs}")
        return x

    def _prepare(self, x, y, role: str):
        x = self._prepare_inputs(x, role)
        y = self._prepare_targets(y, role)
        if y.shape[0] != x.shape[0]:
            raise XpnetError(f"{role} data has {x.shape[0]} samples but {y.shape[0]} labels: they must match")
        return x, y

    def _prepare_targets(self, y, role: str):
        xp = self.backend.xp
        if not self.classify:
            return self.backend.asarray(y, dtype=self.dtype)
        y = self.backend.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # a column of labels, not one-hot rows of a single class
        elif y.ndim == 2:
            self._one_hot_width(y.shape[1], role)
            y = xp.argmax(y, axis=1)
        if y.ndim != 1:
            raise XpnetError(f"{role} labels must be 1-D class indices or 2-D one-hot rows, got shape {tuple(y.shape)}")
        if xp.isdtype(y.dtype, "real floating"):
            if not bool(xp.all(y == xp.round(y))):
                raise XpnetError(f"{role} labels must be whole numbers 0..K-1; for real-valued targets use loss='mse'")
        elif not xp.isdtype(y.dtype, "integral"):
            raise XpnetError(
                f"{role} labels must be integers 0..K-1, got dtype {y.dtype}: map them first, "
                "e.g. classes, y = numpy.unique(y, return_inverse=True)"
            )
        y = xp.astype(y, xp.int64)
        lowest, highest = int(xp.min(y)), int(xp.max(y))
        if lowest < 0:
            raise XpnetError(
                f"{role} labels must be 0..K-1 but include {lowest}: map them first, "
                "e.g. numpy.unique(y, return_inverse=True)"
            )
        if self.n_classes is not None and highest >= self.n_classes:
            raise XpnetError(
                f"{role} labels include {highest} but the model has {self.n_classes} classes (0..{self.n_classes - 1})"
            )
        return y

    def _one_hot_width(self, width: int, role: str) -> None:
        """One-hot rows state the number of classes, even of classes absent from this data."""
        if self.n_classes is None:
            self.n_classes = width
        elif width != self.n_classes:
            raise XpnetError(f"{role} one-hot rows have {width} columns but the model has {self.n_classes} classes")

    def _check_target_widths(self, y, y_val):
        """Regression targets need one column per output, in training and validation alike: checked
        before training, which would otherwise stop at the first mismatched loss."""
        outputs = _target_width(y) if self.network is None else self.network.n_outputs
        for role, targets in (("training", y), ("validation", y_val)):
            if targets is not None and _target_width(targets) != outputs:
                raise XpnetError(
                    f"{role} targets have {_target_width(targets)} columns but the model has {outputs} outputs"
                )

    def _n_outputs(self, y, y_val) -> int:
        xp = self.backend.xp
        if not self.classify:
            return _target_width(y)
        highest = max(int(xp.max(labels)) for labels in (y, y_val) if labels is not None)
        return max(highest + 1, 2)

    def _split_validation(self, x, y):
        xp = self.backend.xp
        n_val = max(1, round(self.config.val_split * x.shape[0]))
        if n_val >= x.shape[0]:
            raise XpnetError(f"val_split {self.config.val_split} leaves no training data: use a smaller fraction")
        order = streams.RandomStream(self.backend, self.config.seed, streams.SPLIT).permutation(x.shape[0])
        val, train = order[:n_val], order[n_val:]
        return (
            xp.take(x, train, axis=0),
            xp.take(y, train, axis=0),
            xp.take(x, val, axis=0),
            xp.take(y, val, axis=0),
        )

    def _build(self, n_inputs: int, n_outputs: int, evaluation_rows: int):
        sizes = [n_inputs, *self.config.hidden, n_outputs]
        itemsize = np.dtype(self.config.dtype).itemsize
        buffers = len(self.optimizer.buffers)
        memory.check_fits(
            sizes, itemsize, buffers, self.config.batch_size, self.backend, evaluation_rows=evaluation_rows
        )
        if self.classify:
            self.n_classes = n_outputs
        rng = streams.RandomStream(self.backend, self.config.seed, streams.INIT)
        self.network = Network.mlp(
            sizes,
            rng,
            activation=self.config.activation,
            init=self.config.init,
            dropout=self.config.dropout,
            dtype=self.dtype,
        )

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write model, optimizer state, settings and history to ``path`` atomically (no pickle)."""
        persistence.save(self, path)


def _batch_hook(callbacks):
    hooks = [
        callback.on_batch_end for callback in callbacks if type(callback).on_batch_end is not Callback.on_batch_end
    ]
    if not hooks:
        return None
    return lambda batch: [hook(batch) for hook in hooks]


def _target_width(y) -> int:
    return 1 if y.ndim == 1 else y.shape[1]


def _is_foreign_array(x) -> bool:
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, np.ndarray)


def _fraction(count, total: int) -> float | None:
    """``count / total`` as a float, reading the device scalar once (None for regression)."""
    return None if count is None else int(count) / total


def _scale_hint(input_scale: float) -> str:
    if input_scale > 10:
        return (
            f"inputs reach {input_scale:g}: scale them to about [0, 1] (for 8-bit pixels, divide by 255) "
            "or standardise each feature; "
        )
    return ""


def _divergence_message(epoch: int, lr: float, input_scale: float, config: TrainConfig) -> str:
    return (
        f"training diverged in epoch {epoch}: the loss became NaN or infinite with learning rate {lr:g} "
        f"({config.optimizer}). Try a learning rate 10x smaller (lr={lr / 10:g}); "
        + _scale_hint(input_scale)
        + "the model keeps the weights from before this epoch."
    )


def _chance_level_message(record, chance: float, input_scale: float, config: TrainConfig) -> str:
    return (
        f"training accuracy is {100 * record['train_accuracy']:.1f}% after {record['epoch']} epochs, "
        f"{'below' if record['train_accuracy'] < 0.8 * chance else 'about'} chance level ({100 * chance:.1f}%): "
        "the network is not learning. Likely causes: "
        + _scale_hint(input_scale)
        + f"the learning rate {config.lr:g} may be too high or too low for {config.optimizer} "
        "(try 1e-3 for adam, 0.1 for sgd); labels may not match their inputs (shuffled separately, "
        "or off by one)."
    )
