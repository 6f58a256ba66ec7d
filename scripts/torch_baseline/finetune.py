"""compactkd_jax's supervised training recipe in PyTorch, for the PyTorch baselines and peers: the
same optimizer (SGD, Nesterov momentum, L2 weight decay added to every gradient, BN included),
the same cosine decay per step, the same augmentation (random crop after zero padding of the
normalized image, random horizontal flip), the same loss ((1 - alpha) CE + alpha Hinton KD at
temperature T from a frozen teacher in eval mode), the same batches per epoch (size // batch, the
remainder dropped). Used by scripts/peer_pruning.py (the Torch-Pruning fine-tune) and
scripts/bench.py (the classification step).

Plain PyTorch and NumPy: images arrive as uint8 NHWC arrays with their normalization.
"""
import math
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def classify_step(model: nn.Module, opt: torch.optim.Optimizer,
                  loss_fn: Callable | None = None) -> Callable:
  """One SGD step on `loss_fn(logits, x, y)` (default: cross-entropy); returns the loss."""
  loss_fn = loss_fn or (lambda logits, x, y: F.cross_entropy(logits, y))

  def step(x, y):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), x, y)
    loss.backward()
    opt.step()
    return loss.detach()
  return step


def hinton_kd(student_logits, teacher_logits, temperature: float):
  """compactkd_jax.losses.hinton_kd: KL(teacher_T || student_T) * T^2, batch mean."""
  log_p_t = F.log_softmax(teacher_logits / temperature, dim=-1)
  log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
  kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
  return kl.mean() * temperature ** 2


def kd_loss(teacher: nn.Module, alpha: float, temperature: float) -> Callable:
  """(1 - alpha) CE + alpha KD from `teacher` (frozen, eval mode) on the same augmented batch."""
  teacher.eval()
  for p in teacher.parameters():
    p.requires_grad_(False)

  def loss(logits, x, y):
    ce = F.cross_entropy(logits, y)
    if alpha <= 0:
      return ce
    with torch.no_grad():
      t = teacher(x)
    return (1 - alpha) * ce + alpha * hinton_kd(logits, t, temperature)
  return loss


def sgd_cosine(model: nn.Module, learning_rate: float, total_steps: int, momentum: float = 0.9,
               nesterov: bool = True, weight_decay: float = 5e-4):
  """train.make_optimizer: optax.cosine_decay_schedule(lr, total_steps) stepped once per step."""
  opt = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum,
                        nesterov=nesterov, weight_decay=weight_decay)
  decay = lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
  return opt, torch.optim.lr_scheduler.LambdaLR(opt, decay)


class Images:
  """uint8 NHWC images normalized (and augmented) into float NCHW batches."""

  def __init__(self, images: np.ndarray, labels: np.ndarray, mean: Sequence[float],
               std: Sequence[float]):
    self.images, self.labels = images, labels.astype(np.int64)
    self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

  def __len__(self):
    return len(self.labels)

  def batch(self, idx: np.ndarray, rng: np.random.Generator | None = None,
            crop_padding: int = 0, flip: bool = False):
    x = torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - self.mean) / self.std
    if rng is not None:
      x = augment(x, rng, crop_padding, flip)
    return x.contiguous(), torch.from_numpy(self.labels[idx])


def augment(x: torch.Tensor, rng: np.random.Generator, crop_padding: int, flip: bool):
  """feed.augment: per-example crop of the zero-padded normalized image, then a random flip."""
  n, _, h, w = x.shape
  if crop_padding:
    p = crop_padding
    padded = F.pad(x, (p, p, p, p))
    offsets = rng.integers(0, 2 * p + 1, size=(n, 2))
    x = torch.stack([padded[i, :, o[0]:o[0] + h, o[1]:o[1] + w] for i, o in enumerate(offsets)])
  if flip:
    flips = torch.from_numpy(rng.random(n) < 0.5)
    x = torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)
  return x


def evaluate(model: nn.Module, data: Images, batch_size: int = 1000) -> float:
  model.eval()
  correct = 0
  with torch.no_grad():
    for start in range(0, len(data), batch_size):
      x, y = data.batch(np.arange(start, min(start + batch_size, len(data))))
      correct += int((model(x).argmax(1) == y).sum())
  return correct / len(data)


def fit(model: nn.Module, train: Images, steps: int, batch_size: int, learning_rate: float,
        seed: int, loss_fn: Callable | None = None, crop_padding: int = 0, flip: bool = False,
        weight_decay: float = 5e-4, log: Callable[[str], None] = print,
        log_every: int = 100) -> dict:
  """Trains `model` for `steps` SGD steps (cosine decay to 0); returns steps, images, seconds."""
  opt, schedule = sgd_cosine(model, learning_rate, steps, weight_decay=weight_decay)
  step_fn = classify_step(model, opt, loss_fn)
  per_epoch = len(train) // batch_size
  rng = np.random.default_rng(seed)
  order = None
  model.train()
  start = time.perf_counter()
  for step in range(steps):
    epoch, pos = divmod(step, per_epoch)
    if pos == 0:
      order = rng.permutation(len(train))
    x, y = train.batch(order[pos * batch_size:(pos + 1) * batch_size], rng, crop_padding, flip)
    loss = step_fn(x, y)
    schedule.step()
    if (step + 1) % log_every == 0 or step + 1 == steps:
      rate = (step + 1) / (time.perf_counter() - start)
      log(f"step {step + 1}/{steps} (epoch {epoch}) loss={float(loss):.4f} | {rate:.2f} steps/s "
          f"ETA {(steps - step - 1) / rate:.0f} s")
  seconds = time.perf_counter() - start
  return {"steps": steps, "images": steps * batch_size, "epochs": steps / per_epoch,
          "train_seconds": seconds}
