"""compactkd_jax: compact CNNs by knowledge distillation with block-wise optimization."""
