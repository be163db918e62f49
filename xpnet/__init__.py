"""xpnet: a readable multi-layer-perceptron trainer whose math is written once against the Python
array API standard, and runs on NumPy, CuPy, PyTorch or any other array-API library."""

from xpnet.backend import Backend, select
from xpnet.callbacks import Callback, EarlyStopping
from xpnet.config import TrainConfig
from xpnet.datasets import load_digits
from xpnet.errors import TrainingDiverged, XpnetError, XpnetWarning
from xpnet.gradcheck import GradientMismatch, gradcheck
from xpnet.layers import Activation, Dense, Dropout, Layer
from xpnet.model import Model
from xpnet.network import Network
from xpnet.persistence import ModelFileError, load

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Backend",
    "Callback",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "GradientMismatch",
    "Layer",
    "Model",
    "ModelFileError",
    "Network",
    "TrainConfig",
    "TrainingDiverged",
    "XpnetError",
    "XpnetWarning",
    "gradcheck",
    "load",
    "load_digits",
    "select",
]
