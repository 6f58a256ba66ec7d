"""Losses, all computed in float32: cross-entropy, Hinton KD, and the normalized feature MSE."""
import jax
import jax.numpy as jnp


def cross_entropy(logits, labels, mask=None):
  """Mean softmax cross-entropy from log-softmax (fp32); `mask` drops padded examples."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  nll = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
  return _masked_mean(nll, mask)


def hinton_kd(student_logits, teacher_logits, temperature: float):
  """KL(teacher_T || student_T) * T^2 (Hinton et al. 2015), batch mean, fp32 log-softmax."""
  t = temperature
  log_p_t = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / t)
  log_p_s = jax.nn.log_softmax(student_logits.astype(jnp.float32) / t)
  kl = jnp.sum(jnp.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
  return jnp.mean(kl) * t * t


def normalized_mse(pred, target):
  """MSE divided by the target's mean square, so blocks of different scale compare."""
  pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
  return jnp.mean((pred - target) ** 2) / (jnp.mean(target ** 2) + 1e-8)


def _masked_mean(x, mask):
  if mask is None:
    return jnp.mean(x)
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)
