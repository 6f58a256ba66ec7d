"""Named random streams. Every random choice of a run derives from `config.seed` and the name of
its purpose ("teacher/init", "student/batches", ...), so streams never collide and adding one never
shifts another (no offsets to keep apart by hand)."""
import zlib


def of(seed: int, purpose: str) -> int:
  """The integer seed of `purpose` under the run's `seed`: a jax.random.key or a numpy stream."""
  return zlib.crc32(f"{seed}/{purpose}".encode()) & 0x7FFFFFFF


# The purposes, one per stream. The fine-tune and the baselines share one batch and augmentation
# stream: the student and its baselines see the same images in the same order.
TEACHER_INIT = "teacher/init"
TEACHER_TRAIN = "teacher/train"
DISTILL_INIT = "distill/init"
DISTILL_TRAIN = "distill/train"
REFINE_TRAIN = "refine/train"
STUDENT_TRAIN = "student/train"


def baseline_init(kind: str) -> str:
  return f"baseline/{kind}/init"
