"""compactkd_jax: compact CNNs by knowledge distillation with block-wise optimization."""


def load_student(path: str):
  """Rebuilds an exported student (`<workdir>/export`): `.net`, `.variables`, `.predict(images)`."""
  from compactkd_jax.export import load_student as _load  # lazy: keep `import compactkd_jax` light
  return _load(path)
