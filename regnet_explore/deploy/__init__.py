"""Deployment: the detector as two ONNX graphs run by onnxruntime, and arithmetic below float32.

- :mod:`~regnet_explore.deploy.export`: :func:`export_onnx` writes ``encoder.onnx`` (pillars -> pillar features,
  any number of pillars), ``dense.onnx`` (BEV canvas -> head outputs: backbone, neck, head) and ``deploy.json``
  (what the runtime needs: config, box convention, grid, outputs).
- :mod:`~regnet_explore.deploy.quantize`: ``dense.int8.onnx``, onnxruntime's static int8 quantization calibrated on
  synthetic training frames, with a per-layer sensitivity pass choosing the convolutions that stay float32.
- :mod:`~regnet_explore.deploy.runtime`: :class:`OnnxPointPillars`, the graphs behind :class:`PointPillars`'s
  ``predict``; voxelization, scatter, box decoding and NMS stay the package's torch code.

onnx and onnxruntime are the optional extra ``regnet_explore[deploy]``; without them these modules import and
every call says what to install.
"""
