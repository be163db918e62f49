"""Models leaving xpnet for other runtimes: an ONNX file for onnxruntime and the like (``onnx_graph``, the
extra ``xpnet[onnx]``). onnx is not imported until an export asks for it."""

from xpnet.export.onnx_graph import export_onnx

__all__ = ["export_onnx"]
