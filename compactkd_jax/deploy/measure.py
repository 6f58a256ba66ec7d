"""Timing and accuracy of a deployed file's `run` callable: batch latency as median and p90 of
repeated runs after warm-up, throughput at a batch size, accuracy over a split (at the file's
fixed batch), and the largest logit difference from the JAX model."""
import time

import numpy as np


def latency(run, images: np.ndarray, warmup: int = 10, max_runs: int = 300,
            max_seconds: float = 2.0, min_runs: int = 20) -> dict:
  """Median and p90 milliseconds of `run(images)`, each run timed alone."""
  for _ in range(warmup):
    run(images)
  times, start = [], time.perf_counter()
  while len(times) < max_runs and (len(times) < min_runs or
                                   time.perf_counter() - start < max_seconds):
    t = time.perf_counter()
    run(images)
    times.append(time.perf_counter() - t)
  ms = 1e3 * np.asarray(times)
  return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
          "runs": len(ms), "batch": len(images)}


def throughput(run, images: np.ndarray, **kwargs) -> float:
  """Images per second at the batch of `images` (from the median batch time)."""
  return len(images) / (latency(run, images, **kwargs)["median_ms"] / 1e3)


def predictions(run, images: np.ndarray, batch: int) -> np.ndarray:
  """Logits of every full batch of `images` (a remainder smaller than `batch` is dropped)."""
  n = len(images) // batch * batch
  return np.concatenate([run(np.ascontiguousarray(images[i:i + batch]))
                         for i in range(0, n, batch)])


def accuracy(run, images: np.ndarray, labels: np.ndarray, batch: int) -> float:
  logits = predictions(run, images, batch)
  return float(np.mean(logits.argmax(-1) == labels[:len(logits)]))
