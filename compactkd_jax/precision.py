"""Mixed precision by casting (`<section>.train.precision`): "bf16" runs the forward and backward
passes (convolutions, matmuls, activations) in bfloat16 while the parameters, the optimizer state,
the BN running statistics and the losses stay float32.

Inside a loss function the float32 parameters are cast to the compute dtype; the gradient of the
cast brings float32 gradients back to the float32 parameters. Flax's layers infer their compute
dtype from their inputs and parameters, so a bfloat16 input and bfloat16 parameters run every
layer in bfloat16; BatchNorm reduces its batch statistics in float32 and keeps its running
averages float32 (they are not cast). Losses cast logits and features to float32 (losses.py).
"""
import jax
import jax.numpy as jnp

PRECISIONS = {"f32": jnp.float32, "bf16": jnp.bfloat16}


def dtype(precision: str):
  return PRECISIONS[precision]


def cast(tree, precision: str):
  """Every floating leaf of `tree` in the compute dtype of `precision` (a no-op for f32)."""
  if precision == "f32":
    return tree
  target = PRECISIONS[precision]
  return jax.tree.map(lambda v: v.astype(target) if jnp.issubdtype(v.dtype, jnp.floating) else v,
                      tree)


def cast_params(variables: dict, precision: str) -> dict:
  """A variables dict with its "params" cast (BN statistics stay float32)."""
  return {**variables, "params": cast(variables["params"], precision)}
