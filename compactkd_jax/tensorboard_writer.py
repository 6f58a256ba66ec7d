"""TensorBoard scalars without TensorFlow: the event files that clu's SummaryWriter writes
through tf.summary, written with TensorBoard's own event-file writer (pure-Python protobufs), so
that training, distillation and the report need no TensorFlow (only the tfds data source and the
LiteRT export import it). TensorBoard reads these files like any other."""
import os
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class ScalarWriter:
  """The part of clu's MetricWriter interface the training loop uses: scalars, flush, close."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    self._writer = EventFileWriter(logdir)

  def write_scalars(self, step: int, scalars: dict) -> None:
    values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
    self._writer.add_event(event_pb2.Event(step=int(step), wall_time=time.time(),
                                           summary=summary_pb2.Summary(value=values)))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
