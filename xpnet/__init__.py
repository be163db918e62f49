"""xpnet: a readable multi-layer-perceptron trainer whose math is written once against the Python
array API standard, and runs on NumPy, CuPy, PyTorch or any other array-API library."""

# First, before NumPy loads its BLAS: ranks an MPI launcher put on one node share its cores.
from xpnet.distributed import launcher

launcher.share_cores_among_ranks()

from xpnet.arrays.backend import Backend, select
from xpnet.datasets import load_digits
from xpnet.distributed.parallel import DataParallel
from xpnet.errors import GradientMismatch, ModelFileError, TrainingDiverged, XpnetError, XpnetWarning
from xpnet.export import export_onnx, from_torch, torch_sequential, torch_state_dict
from xpnet.nn.gradcheck import gradcheck
from xpnet.nn.layers import Activation, Dense, Dropout, Layer, register_layer
from xpnet.nn.network import Network
from xpnet.train.callbacks import Callback, EarlyStopping
from xpnet.train.config import TrainConfig
from xpnet.train.model import Model, load
from xpnet.version import __version__

__all__ = [
    "Activation",
    "Backend",
    "Callback",
    "DataParallel",
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
    "__version__",
    "export_onnx",
    "from_torch",
    "gradcheck",
    "load",
    "load_digits",
    "register_layer",
    "select",
    "torch_sequential",
    "torch_state_dict",
]
