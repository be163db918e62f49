"""Models leaving xpnet for other runtimes: an ONNX file for onnxruntime and the like
(``onnx_graph``, the extra ``xpnet[onnx]``), and weights both ways with a PyTorch ``nn.Sequential``
(``torch_weights``). Neither onnx nor torch is imported until an export asks for it."""

from xpnet.export.onnx_graph import export_onnx
from xpnet.export.torch_weights import from_torch, torch_sequential, torch_state_dict

__all__ = ["export_onnx", "from_torch", "torch_sequential", "torch_state_dict"]
