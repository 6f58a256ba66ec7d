"""The network where it runs: LiteRT (TFLite) and ONNX files, fp32 and int8 (formats.py), loaded
in their runtimes (runtimes.py), checked against JAX and timed there (measure.py); the report's
deployment table and the `python -m compactkd_jax.deploy` command (evaluate.py, __main__.py).

Needs the deploy extra (`pip install -e '.[deploy]'`: tf2onnx, onnx, onnxruntime, ai-edge-litert);
nothing else in the package imports this one except the report, and only when runtimes are asked
for."""
