"""Every training setting in one validated, JSON-friendly record.

The library, the command line (``--hidden``, ``--lr``, ...), TOML config files and saved models all
use these names, so a setting means the same thing wherever it is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from xpnet import optim, validation
from xpnet.errors import SettingError
from xpnet.nn import activations, losses
from xpnet.nn.initializers import INITIALIZERS
from xpnet.optim import schedules

DTYPES = ("float32", "float64")
# The fraction of the training data held out when early stopping is asked for without a validation
# split (scikit-learn's validation_fraction default).
EARLY_STOPPING_VAL_SPLIT = 0.1
EARLY_STOPPING_PATIENCE = "early stopping patience (in epochs)"
# L-BFGS's gradient tolerance where ``tol`` is not given (scikit-learn's default tol).
LBFGS_TOL = 1e-4


@dataclass
class TrainConfig:
    """Network shape, optimizer and training-loop settings, each checked when it is set.

    Every field is also a keyword of ``Model`` and, spelled ``--kebab-case``, an option of ``xpnet train``.

    Attributes:
        hidden: Hidden layer widths.
        activation: ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid``, ``gelu`` (tanh approximation), ``identity``.
        init: ``he_normal``, ``he_uniform``, ``glorot_normal``, ``glorot_uniform``; ``auto``: He for ReLU-like
            activations, Glorot otherwise.
        dropout: Dropout rate after each hidden layer.
        loss: ``cross_entropy`` (softmax, log-sum-exp) for classes, ``mse`` for regression (and the
            scikit-learn estimators' ``squared_error``, ``binary_cross_entropy``, ``poisson``).
        optimizer: ``sgd``, ``momentum``, ``nesterov``, ``adam``, ``adamw``, ``rmsprop`` (rules as in ``torch.optim``).
        lr: Learning rate.
        momentum: SGD momentum; ``None``: 0 for ``sgd``, 0.9 for ``momentum`` and ``nesterov``.
        adam_beta1: Adam's and AdamW's first moment decay.
        adam_beta2: Adam's and AdamW's second moment decay.
        adam_eps: Adam's and AdamW's epsilon.
        weight_decay: L2 decay (coupled for sgd and adam, decoupled for adamw).
        schedule: ``constant``, ``step`` (x0.1 every 10 epochs), ``cosine``; scikit-learn's ``invscaling``
            and ``adaptive``.
        warmup_epochs: Epochs of linear learning-rate warm-up before the schedule.
        batch_size: Minibatch size; batches are reshuffled every epoch.
        epochs: Epochs per ``fit`` call.
        early_stopping: Patience in epochs on the validation loss (``None``: off); the best weights are restored.
        val_split: Fraction of the training data held out for validation.
        seed: One seed for initialisation, shuffling, dropout and the split.
        dtype: ``float32`` or ``float64``, kept end to end.
        tf32: TF32 matrix multiplies on CUDA GPUs (faster, rounded to 10 mantissa bits); ignored on the CPU.
        alpha: scikit-learn's L2 penalty on the weights.
        power_t: scikit-learn's ``invscaling`` exponent.
        tol: scikit-learn's stopping tolerance on the training loss (``None``: off).
        n_iter_no_change: Epochs without a ``tol`` improvement before stopping.
        shuffle: Whether each epoch visits the samples in a new order.

    Raises:
        SettingError: A value is out of range or of the wrong type; the message names it and what to use.
    """

    hidden: tuple[int, ...] = (128,)
    activation: str = "relu"
    init: str = "auto"
    dropout: float = 0.0
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float | None = None
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: int = 0
    batch_size: int = 32
    epochs: int = 30
    early_stopping: int | None = None
    val_split: float = 0.0
    seed: int = 0
    dtype: str = "float32"
    tf32: bool = False
    # scikit-learn's settings: the L2 penalty on weights (``Dense.l2``), invscaling's exponent, the stopping
    # rule (``callbacks.Convergence``; None: off) and whether each epoch visits the samples in a new order.
    alpha: float = 0.0
    power_t: float = 0.5
    tol: float | None = None
    n_iter_no_change: int = 10
    shuffle: bool = True
    # optimizer="lbfgs": an epoch is one L-BFGS run over the whole training set, from the weights as
    # they are, of at most lbfgs_iterations iterations and max_fun loss evaluations (scikit-learn's
    # max_iter and max_fun for one fit); it ends sooner once no gradient entry exceeds tol (LBFGS_TOL
    # when tol is None).
    lbfgs_iterations: int = 20
    max_fun: int = 15000

    def __post_init__(self):
        self.hidden = _as_sizes(self.hidden)
        self.seed = validation.whole("seed", self.seed, minimum=0)
        validation.choice("activation", self.activation, activations.ACTIVATIONS)
        validation.choice("init", self.init, ("auto", *INITIALIZERS))
        validation.choice("loss", self.loss, losses.LOSSES)
        validation.choice("optimizer", self.optimizer, optim.names())
        validation.choice("schedule", self.schedule, schedules.SCHEDULES)
        validation.choice("dtype", self.dtype, DTYPES)
        validation.fraction("dropout", self.dropout)
        validation.learning_rate(self.lr)
        if self.momentum is not None:
            validation.fraction("momentum", self.momentum)
        validation.fraction("adam_beta1", self.adam_beta1)
        validation.fraction("adam_beta2", self.adam_beta2)
        if not validation.finite("adam_eps", self.adam_eps) > 0:
            raise SettingError(f"adam_eps must be positive, got {self.adam_eps}; the usual value is 1e-8")
        validation.non_negative("weight_decay", self.weight_decay)
        self.batch_size = validation.whole("batch size", self.batch_size, minimum=1)
        self.epochs = validation.whole("epochs", self.epochs, minimum=1)
        if self.early_stopping is not None:
            self.early_stopping = validation.whole(EARLY_STOPPING_PATIENCE, self.early_stopping, minimum=1)
        validation.fraction("val_split", self.val_split)
        self.tf32 = validation.flag("tf32", self.tf32)
        self.warmup_epochs = validation.whole("warmup_epochs", self.warmup_epochs, minimum=0)
        validation.non_negative("alpha", self.alpha)
        validation.non_negative("power_t", self.power_t)
        if self.tol is not None:
            validation.non_negative("tol", self.tol)
        self.n_iter_no_change = validation.whole("n_iter_no_change", self.n_iter_no_change, minimum=1)
        self.shuffle = validation.flag("shuffle", self.shuffle)
        self.lbfgs_iterations = validation.whole("lbfgs_iterations", self.lbfgs_iterations, minimum=1)
        self.max_fun = validation.whole("max_fun", self.max_fun, minimum=1)

    def to_dict(self) -> dict:
        """The settings as JSON values (``hidden`` a list), as ``config.json`` and model files hold them."""
        data = dataclasses.asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a mapping, naming any unknown key instead of ignoring it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            valid = ", ".join(sorted(known))
            raise SettingError(f"unknown setting(s) {', '.join(unknown)}: valid settings are {valid}")
        return cls(**data)

    def replace(self, **changes) -> TrainConfig:
        """These settings with ``changes`` applied, checked again (``SettingError`` for a bad value)."""
        return dataclasses.replace(self, **changes)

    def with_early_stopping_split(self) -> TrainConfig:
        """These settings, holding out ``EARLY_STOPPING_VAL_SPLIT`` of the training data when early
        stopping is on without a validation split (the command and the estimators have no other source
        of validation data)."""
        if self.early_stopping is None or self.val_split:
            return self
        return self.replace(val_split=EARLY_STOPPING_VAL_SPLIT)

    def make_optimizer(self) -> optim.Optimizer:
        return optim.make(
            self.optimizer,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            beta1=self.adam_beta1,
            beta2=self.adam_beta2,
            eps=self.adam_eps,
        )

    def make_schedule(self, samples_per_epoch: int = 1) -> schedules.Schedule:
        return schedules.Schedule(
            self.schedule,
            total_epochs=self.epochs,
            warmup_epochs=self.warmup_epochs,
            power_t=self.power_t,
            samples_per_epoch=samples_per_epoch,
        )


def _as_sizes(hidden) -> tuple[int, ...]:
    if isinstance(hidden, int):
        hidden = (hidden,)
    try:
        sizes = tuple(int(size) for size in hidden)
    except (TypeError, ValueError):
        raise SettingError(f"hidden must be a list of layer widths such as [128, 64], got {hidden!r}") from None
    if any(size < 1 for size in sizes) or any(int(s) != s for s in hidden):
        raise SettingError(f"hidden layer widths must be positive integers, got {list(hidden)}")
    return sizes
