"""``Model``: a network with its settings and its training state (optimizer, history, early stopping,
position inside an epoch), trained by ``fit``.

This is the object users hold. It places data on the chosen device once, runs the epochs with their
safety checks, and owns its state (``state_dict``/``from_state``): a saved file, a checkpoint or a
pickle holds exactly that, so repeated ``fit`` calls and resumed runs continue as if never stopped.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence

from xpnet import validation
from xpnet.arrays import streams
from xpnet.arrays.backend import Backend, array_namespace, backend_for, is_foreign_array, to_numpy
from xpnet.arrays.flat import copied
from xpnet.arrays.precision import tf32_matmuls
from xpnet.errors import ModelFileError, SettingError, StateError, TrainingDiverged, XpnetError, one_line
from xpnet.nn import losses
from xpnet.nn.layers import weight_penalty
from xpnet.nn.network import Network
from xpnet.train import diagnostics, full_batch, inputs, loop, memory, model_state
from xpnet.train.callbacks import NEEDS_VALIDATION, Callback, Convergence, EarlyStopping
from xpnet.train.config import DTYPES, TrainConfig

# Settings that describe the built-in multi-layer perceptron, which a network of your own replaces.
NETWORK_SETTINGS = ("hidden", "activation", "init", "dropout")


class Model:
    """A network and everything that trains it: settings, optimizer state, history, early stopping.

    ``Model(hidden=[64], epochs=10).fit(x_train, y_train)`` trains; ``predict``, ``evaluate`` and ``save``
    follow (the guide's "Training from Python" page shows each).

    Args:
        config: The settings; ``None`` for ``TrainConfig()``'s defaults.
        device: ``"cpu"`` (NumPy), ``"cuda"`` or ``"cuda:N"`` (CuPy), ``"auto"`` (CUDA when CuPy sees a GPU;
            arrays of another library train in their own namespace and device), or an array-API namespace.
        network: A ``Network`` of your own (any registered layers) to train instead of the built-in
            multi-layer perceptron that ``hidden``, ``activation``, ``init`` and ``dropout`` describe.
        **settings: ``TrainConfig`` fields, which replace those of ``config``.

    Raises:
        SettingError: A setting is out of range, unknown, or describes the built-in network beside ``network``.
    """

    def __init__(self, config: TrainConfig | None = None, *, device="auto", network: Network | None = None, **settings):
        config = config or TrainConfig()
        if network is not None:
            config = _settings_for(network, config, settings)
        self.config = config.replace(**settings) if settings else config
        self.device = device
        self.backend: Backend | None = None
        self.network = network
        # Given (network=), or built by fit from the settings, which then describe its layers.
        self.network_given = network is not None
        self.optimizer = self.config.make_optimizer()
        self.history: list[dict] = []
        # A classifier's number of classes: fixed by a network of your own, else by fit.
        self.n_classes = network.n_outputs if network is not None and self.classify else None
        self.early_stopping = EarlyStopping(self.config.early_stopping) if self.config.early_stopping else None
        # scikit-learn's stopping on the training loss (tol), and the adaptive schedule's cuts; L-BFGS
        # reads tol as its own gradient tolerance instead.
        self.convergence = None
        if self.config.tol is not None and not self.optimizer.full_batch:
            adaptive = self.config.schedule == "adaptive"
            self.convergence = Convergence(self.config.tol, self.config.n_iter_no_change, adaptive=adaptive)
        # Set while an epoch is under way (or loaded from a mid-epoch checkpoint): where it stands.
        self.position: loop.EpochPosition | None = None
        # What trains one epoch, with loop.train_epoch's arguments: that function, or another way of
        # taking the same steps (xpnet.distributed.DataParallel spreads each over MPI processes), or,
        # for a full-batch optimizer, its run over the whole training set.
        self.epoch_runner = loop.train_epoch
        if self.optimizer.full_batch:
            self.epoch_runner = full_batch.LBFGSEpoch.from_config(self.config)

    @property
    def classify(self) -> bool:
        """True for a classifier (``loss="cross_entropy"``), False for regression (``loss="mse"``)."""
        return self.config.loss == "cross_entropy"

    @property
    def epochs_done(self) -> int:
        """The number of epochs trained so far, over every ``fit`` call."""
        return len(self.history)

    @property
    def dtype(self):
        """The floating dtype of the model's arrays, in its backend's namespace."""
        return getattr(self.backend.xp, self.config.dtype)

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything this model is, as arrays and JSON values (see ``xpnet.train.model_state``).

        Returns:
            Settings, history, the network's layers and parameters, optimizer buffers and step count, early
            stopping's best weights and the position inside an epoch: what ``from_state`` rebuilds.

        Raises:
            XpnetError: The model has not been trained or loaded yet.
        """
        self._require_trained()
        return model_state.state_of(self)

    @classmethod
    def from_state(cls, state: dict, device="cpu") -> Model:
        """The model ``state`` describes.

        Args:
            state: What ``state_dict`` returned (host arrays and JSON values).
            device: Where the model's arrays go, as for ``Model``.

        Returns:
            The model, ready to predict, save or train on.

        Raises:
            StateError: ``state`` does not describe a valid model.
        """
        model = cls(model_state.settings_of(state), device=device)
        loaded = model_state.load_state(state, model.config, device, model.optimizer, model.early_stopping)
        model.backend, model.network, model.n_classes, model.history, model.position, model.network_given = loaded
        return model

    @classmethod
    def from_network(cls, network: Network, *, device="cpu", **settings) -> Model:
        """A model holding ``network``'s weights as they are (trained elsewhere, say).

        Args:
            network: The network, with its parameters.
            device: Where the model's arrays go, as for ``Model``.
            **settings: ``TrainConfig`` fields, as for ``Model(network=...)``.

        Returns:
            A model ready to predict, save or train on without a ``fit`` first.

        Raises:
            SettingError: A setting describes the built-in network, or ``network`` has no parameters.
        """
        model = cls(network=network, device=device, **settings)
        model._choose_backend(None)
        return model

    def save(self, path) -> None:
        """Write model, optimizer state, settings and history to ``path`` atomically (no pickle).

        Args:
            path: The file to write (an ``.npz`` archive, read back by ``xpnet.load``).

        Raises:
            XpnetError: The model has not been trained or loaded yet, or the file cannot be written (a file
                already there is then left as it was).
        """
        model_state.write(path, self)

    # -- training ----------------------------------------------------------------------------------

    def fit(
        self,
        x,
        y,
        *,
        validation_data: tuple | None = None,
        epochs: int | None = None,
        callbacks: Sequence[Callback] = (),
        n_classes: int | None = None,
        sample_weight=None,
    ) -> list[dict]:
        """Train for ``epochs`` more epochs; a later call continues the same run.

        Arrays may come from any array-API library; they are copied to the model's device once.

        Args:
            x: Inputs, ``(samples, features)``.
            y: Integer class labels ``0..K-1`` or one-hot rows (or float targets with ``loss="mse"``).
            validation_data: ``(x_val, y_val)``, measured after every epoch (and watched by early stopping).
            epochs: How many epochs this call trains; ``None`` for ``config.epochs``.
            callbacks: ``Callback`` objects called during training.
            n_classes: The number of classes K, when ``y`` may not show every class yet (incremental
                training on chunks of data).
            sample_weight: One non-negative number per sample: each batch's training loss is then its
                weighted mean (validation stays unweighted).

        Returns:
            The full history: one record per epoch trained so far (losses, accuracies, seconds).

        Raises:
            XpnetError: The data does not fit the model or the settings (shapes, labels, non-finite inputs).
            TrainingDiverged: The loss became NaN or infinite; the model keeps its last finite weights.
        """
        epochs = self.config.epochs if epochs is None else validation.whole("epochs", epochs, minimum=1)
        if n_classes is not None:
            self._expect_classes(validation.whole("n_classes", n_classes, minimum=1))
        self._choose_backend(x)
        with self.backend.active(), tf32_matmuls(self.backend, self.config.tf32):
            self._fit(x, y, validation_data, epochs, callbacks, sample_weight)
        return self.history

    def _fit(self, x, y, validation_data, epochs: int, callbacks: Sequence[Callback], sample_weight) -> None:
        x, y = self._prepare(x, y, "training")
        if sample_weight is not None:
            if validation_data is None and self.config.val_split:
                raise XpnetError(
                    "sample_weight weighs the training loss only, so the rows val_split holds out would lose "
                    "theirs: hold them out yourself and pass validation_data=(x_val, y_val)"
                )
            sample_weight = inputs.checked_weights(self.backend, sample_weight, x.shape[0], self.dtype)
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
            n_outputs = inputs.target_width(y) if self.network is None else self.network.n_outputs
            inputs.check_target_widths(y, y_val, n_outputs)
        # Early stopping decides first, so the callbacks after it (checkpoints) record its decision.
        callbacks = [self.early_stopping, *callbacks] if self.early_stopping else list(callbacks)
        if self.convergence is not None:  # last: it may read what the other callbacks add to the record
            callbacks.append(self.convergence)
        if x_val is None and any(isinstance(callback, EarlyStopping) for callback in callbacks):
            raise XpnetError(NEEDS_VALIDATION)  # before an epoch is spent
        if self.network is None:
            evaluation_rows = 0 if x_val is None else x_val.shape[0]
            self._build(x.shape, self.n_classes or self._n_outputs(y, y_val), evaluation_rows)
        elif x.shape[1] != self.network.n_inputs:
            raise XpnetError(f"x has {x.shape[1]} features but the model was built for {self.network.n_inputs}")
        diagnostics.warn_if_schedule_ends(self.config, self.epochs_done + epochs)
        self._run_epochs(x, y, x_val, y_val, epochs, callbacks, sample_weight)

    def _expect_classes(self, n_classes: int):
        if not self.classify:
            raise XpnetError("n_classes applies to classifiers (loss='cross_entropy'), not to loss='mse'")
        if self.network is None:
            self.n_classes = n_classes
        elif n_classes != self.n_classes:
            raise XpnetError(f"the model was built for {self.n_classes} classes, not n_classes={n_classes}")

    def _run_epochs(self, x, y, x_val, y_val, epochs, callbacks, sample_weight):
        loss = losses.get(self.config.loss)
        schedule = self.config.make_schedule(samples_per_epoch=x.shape[0])
        batch_size = x.shape[0] if self.optimizer.full_batch else self.config.batch_size
        n_batches = len(loop.batch_bounds(x.shape[0], batch_size))
        scale = functools.cache(lambda: diagnostics.input_scale(self.backend.xp, x))  # read only for a message
        for callback in callbacks:
            callback.on_train_begin(self, epochs)
        for _ in range(epochs):
            epoch = self.epochs_done
            if self.position is None or self.position.epoch != epoch:
                self.position = loop.EpochPosition(epoch)
            lr = schedule.lr(self.config.lr, epoch) * (self.convergence.lr_scale if self.convergence else 1.0)
            for callback in callbacks:
                callback.on_epoch_begin(epoch + 1, n_batches)
            before = self._snapshot()
            started = time.perf_counter()
            result = self.epoch_runner(
                self.network,
                self.optimizer,
                loss,
                x,
                y,
                lr=lr,
                batch_size=batch_size,
                order=self._order(epoch, x.shape[0]),
                dropout_rng=streams.RandomStream(self.backend, self.config.seed, streams.DROPOUT, epoch),
                classify=self.classify,
                on_batch_end=_batch_hook(callbacks),
                position=self.position,
                final_check=x_val is None,
                sample_weight=sample_weight,
            )
            self.position = None
            if result.stalled is not None and bool(result.stalled):
                self._restore(before)
                raise XpnetError(diagnostics.stalled_message(self.backend, lr, self.config))
            # The L2 penalty of each batch, taken at the epoch's final weights.
            penalty = float(weight_penalty(self.network.layers)) * n_batches / x.shape[0]
            record = {"epoch": epoch + 1, "train_loss": float(result.mean_loss) + penalty}
            record["seconds"] = time.perf_counter() - started
            record["train_accuracy"] = _fraction(result.correct, x.shape[0])
            if x_val is not None:
                val_loss, val_correct = loop.evaluate(self.network, loss, x_val, y_val, classify=self.classify)
                record["val_loss"] = float(val_loss)
                record["val_accuracy"] = _fraction(val_correct, x_val.shape[0])
            # The final weights' loss, which the training loss (taken before each step) never saw: the
            # validation loss where there is one, else the first batch's.
            final_loss = record["val_loss"] if x_val is not None else float(result.final_loss)
            if not (math.isfinite(record["train_loss"]) and math.isfinite(final_loss)):
                self._restore(before)
                raise TrainingDiverged(diagnostics.divergence_message(epoch + 1, lr, scale(), self.config))
            record["lr"] = lr
            self.history.append(record)
            diagnostics.warn_if_at_chance_level(record, self.n_classes, scale, self.config)
            stop = [callback.on_epoch_end(record) for callback in callbacks]
            if any(stop):
                break
        for callback in callbacks:
            callback.on_train_end(self)

    def _order(self, epoch: int, n_samples: int):
        """The order of the samples in ``epoch``: drawn from the seed, or as given (``shuffle=False``)."""
        if not self.config.shuffle:
            return self.backend.xp.arange(n_samples, device=self.backend.device)
        return streams.RandomStream(self.backend, self.config.seed, streams.SHUFFLE, epoch).permutation(n_samples)

    def _snapshot(self):
        """Copies of what an epoch changes (parameters and optimizer state), to roll back a diverged epoch."""
        optimizer = self.optimizer.state_dict()
        buffers = {name: copied(arrays) for name, arrays in optimizer["buffers"].items()}
        return self.network.copy_parameters(), {"steps": optimizer["steps"], "buffers": buffers}

    def _restore(self, snapshot):
        parameters, optimizer = snapshot
        self.network.set_parameters(parameters)
        self.optimizer.load_state_dict(optimizer)

    # -- inference ---------------------------------------------------------------------------------

    def predict(self, x):
        """Predict each sample.

        Args:
            x: Inputs, ``(samples, features)``, from any array-API library.

        Returns:
            Class labels (classification) or outputs (regression), in the namespace ``x`` came in.

        Raises:
            XpnetError: The model has not been trained or loaded yet, or ``x`` has the wrong features.
        """
        with self._on_device():
            outputs = self._outputs(x)
            result = losses.predicted_classes(outputs) if self.classify else outputs
            return self._like_input(result, x)

    def predict_proba(self, x):
        """Class probabilities from the softmax of the outputs.

        Args:
            x: Inputs, ``(samples, features)``, from any array-API library.

        Returns:
            ``(samples, classes)`` probabilities, in the namespace ``x`` came in.

        Raises:
            XpnetError: The model is a regression model, has not been trained, or ``x`` has the wrong features.
        """
        if not self.classify:
            raise XpnetError("predict_proba needs a classifier (loss='cross_entropy')")
        with self._on_device():
            return self._like_input(losses.softmax(self._outputs(x)), x)

    def evaluate(self, x, y) -> dict:
        """Measure the model on ``(x, y)``.

        Args:
            x: Inputs, ``(samples, features)``.
            y: Labels or targets, as for ``fit``.

        Returns:
            ``{"loss": ..., "accuracy": ...}``: the mean loss and the accuracy (None for regression), floats.

        Raises:
            XpnetError: The model has not been trained, or the data does not fit it.
        """
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
        if not self.backend.is_numpy and not is_foreign_array(x):
            return to_numpy(result)
        return result

    def _require_trained(self):
        if self.network is None or self.backend is None:
            raise XpnetError("the model has not been trained yet: call fit first, or xpnet.load a saved model")

    # -- data placement and checks -----------------------------------------------------------------

    def _choose_backend(self, x):
        """The backend, chosen once: from the device setting, or (``"auto"``) from foreign data or a
        network of your own; that network's parameters are moved there."""
        if self.backend is not None:
            return
        given = self.network.parameters()[0] if self.network is not None else x
        backend = backend_for(self.device, given)
        backend.require_float(self.config.dtype)
        if self.network is not None:
            self.network.set_parameters([backend.asarray(p) for p in self.network.parameters()])
        self.backend = backend

    def _prepare_inputs(self, x, role: str):
        if self.backend is None:
            self._choose_backend(x)
        n_inputs = None if self.network is None else self.network.n_inputs
        return inputs.checked_inputs(self.backend, x, self.dtype, role, n_inputs)

    def _prepare(self, x, y, role: str):
        x = self._prepare_inputs(x, role)
        if self.classify:
            y, width = inputs.checked_labels(self.backend, y, role, self.n_classes)
            if width is not None and self.n_classes is None:
                self.n_classes = width
        else:
            y = self.backend.asarray(y, dtype=self.dtype)
        if y.shape[0] != x.shape[0]:
            raise XpnetError(f"{role} data has {x.shape[0]} samples but {y.shape[0]} labels: they must match")
        return x, y

    def _n_outputs(self, y, y_val) -> int:
        if not self.classify:
            return inputs.target_width(y)
        return inputs.class_count(self.backend.xp, y, y_val)

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

    def _build(self, shape: tuple[int, int], n_outputs: int, evaluation_rows: int):
        """The built-in network for ``shape`` (samples, inputs) of training data, once it fits in memory."""
        training_rows, n_inputs = shape
        memory.check_model_fits(self.config, n_inputs, n_outputs, self.backend, evaluation_rows, training_rows)
        if self.classify:
            self.n_classes = n_outputs
        rng = streams.RandomStream(self.backend, self.config.seed, streams.INIT)
        self.network = Network.mlp(
            [n_inputs, *self.config.hidden, n_outputs],
            rng,
            activation=self.config.activation,
            init=self.config.init,
            dropout=self.config.dropout,
            dtype=self.dtype,
        )
        for layer in self.network.dense_layers():
            layer.l2 = self.config.alpha


def load(path, device="cpu") -> Model:
    """Read a model saved by ``Model.save`` (or a checkpoint, with the history beside it); nothing in the
    file is ever run.

    Args:
        path: The model file.
        device: Where the model's arrays go: ``"cpu"``, ``"cuda:0"``, a namespace...

    Returns:
        The model, ready to predict, evaluate, save or train on.

    Raises:
        ModelFileError: The file is missing, pickled, damaged, or not a valid model; the message names it.
    """
    state, _ = model_state.read(path)
    return from_file(state, path, device)


def from_file(state: dict, path, device="cpu") -> Model:
    """``Model.from_state`` for a state read from ``path``, whose errors name the file."""
    try:
        return Model.from_state(state, device)
    except StateError as error:
        raise ModelFileError(f"{path}: {one_line(error)}") from None


def _settings_for(network: Network, config: TrainConfig, settings: dict) -> TrainConfig:
    """``config`` for a network of your own: its settings of the built-in network are refused, and the
    dtype is the network's."""
    given = [name for name in NETWORK_SETTINGS if name in settings]
    if given:
        raise SettingError(
            f"network= replaces the built-in network that {', '.join(given)} describe: drop "
            f"{'it' if len(given) == 1 else 'them'}, or leave network out"
        )
    if not isinstance(network, Network) or not network.parameters():
        raise SettingError(f"network must be an xpnet.Network with parameters, got {network!r}")
    parameter = network.parameters()[0]
    xp = array_namespace(parameter)
    dtype = next((name for name in DTYPES if parameter.dtype == getattr(xp, name)), None)
    if dtype is None or settings.get("dtype", dtype) != dtype:
        raise SettingError(
            f"the network's parameters are {parameter.dtype} but dtype={settings.get('dtype')!r}: "
            f"give the network float32 or float64 parameters and leave dtype out"
        )
    return config.replace(dtype=dtype)


def _batch_hook(callbacks):
    hooks = [
        callback.on_batch_end for callback in callbacks if type(callback).on_batch_end is not Callback.on_batch_end
    ]
    if not hooks:
        return None
    return lambda batch: [hook(batch) for hook in hooks]


def _fraction(count, total: int) -> float | None:
    """``count / total`` as a float, reading the device scalar once (None for regression)."""
    return None if count is None else int(count) / total
