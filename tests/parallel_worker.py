"""Runs a few teacher, parallel-distillation and KD fine-tune steps and saves the losses and final
parameters, either on N forced CPU devices in one process or as one of several processes joined by
jax.distributed on localhost:

  python tests/parallel_worker.py devices N SHARDS OUT.npz
  python tests/parallel_worker.py process PROCESS_ID NUM_PROCESSES PORT SHARDS OUT.npz

SHARDS is config.data.shards: with as many shards as processes, each process holds only its own.

Used by test_multidevice.py; separate processes because the device set is fixed at JAX start-up."""
import os
import sys

mode = sys.argv[1]
if mode == "devices":
  num_devices, shards, out_path = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
else:
  process_id, num_processes, port, shards, out_path = (int(sys.argv[2]), int(sys.argv[3]),
                                                       int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
  num_devices = num_processes
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402  (after XLA_FLAGS)
import numpy as np  # noqa: E402

if mode == "process":
  # CPU collectives across processes go through gloo; the coordinator runs in process 0.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id)

from compactkd_jax import config as config_lib, blockwise as distill, feed, pipeline, supervised, train  # noqa: E402,E501
from compactkd_jax.phases import teacher  # noqa: E402

STEPS, BATCH = 3, 32


def flat(tree) -> dict:
  return {jax.tree_util.keystr(p): np.asarray(x) for p, x in
          jax.tree_util.tree_leaves_with_path(jax.device_get(tree))}


def run_steps(step, state, ctx, seed):
  losses = []
  for s in range(STEPS):
    idx = feed.put_global(ctx.splits["train"].train_batch(BATCH, seed, s),
                          feed.sharded(ctx.mesh))
    state, metrics = step(state, idx)
    losses.append(float(metrics["loss"]))
  return state, losses


def main():
  assert jax.device_count() == num_devices, jax.devices()
  cfg = config_lib.default_config()
  cfg.data.train_limit, cfg.data.validation_size, cfg.data.test_limit = 1000, 200, 200
  cfg.data.shards = shards
  cfg.teacher.options.width = 0.25
  for section in ("teacher", "distill", "finetune"):
    cfg[section].train.steps = STEPS
    cfg[section].train.batch_size = BATCH
    # A small rate: a 4-channel net at a large one amplifies float reduction-order differences.
    cfg[section].train.learning_rate = 0.01
  ctx = pipeline.make_context(cfg, out_path + f".workdir{jax.process_index()}")
  tr, key = ctx.splits["train"], jax.random.key(0)
  # Each process holds its own shards only: every local device's block is 1/processes of the data.
  held = {s.data.shape[0] for s in tr.images.addressable_shards}
  assert held == {tr.capacity * shards // jax.process_count()}, (held, tr.shard_sizes)
  out = {}

  net = teacher.build(cfg, ctx.dataset.num_classes)
  state = feed.replicate(train.create_state(supervised.init_variables(net, ctx.dataset.image_shape, 0),
                                            cfg.teacher.train, STEPS), ctx.mesh)
  step = supervised.make_classify_step(net, ctx.preprocess, ctx.mesh, key, tr.images, tr.labels)
  state, out["teacher_losses"] = run_steps(step, state, ctx, 0)
  teacher_vars = supervised.variables_of(state)
  out.update({f"teacher{k}": v for k, v in flat(teacher_vars).items()})

  plan = distill.distill_setup(net, ctx.dataset.image_shape, ("keep", "slim_0.5", "skip"))
  state = feed.replicate(train.create_state(distill.init_candidates(plan, 0), cfg.distill.train, STEPS),
                         ctx.mesh)
  step = distill.make_distill_step(plan, ctx.preprocess, ctx.mesh, key, tr.images, tr.labels,
                                   teacher_vars)
  state, out["distill_losses"] = run_steps(step, state, ctx, 1)
  out.update({f"distill{k}": v for k, v in flat(state.params).items()})

  student = net.with_blocks({b: s for b, cands in plan.menus for c, s in cands if c == "slim_0.5"})
  state = feed.replicate(train.create_state(supervised.init_variables(student, ctx.dataset.image_shape, 1),
                                            cfg.finetune.train, STEPS), ctx.mesh)
  step = supervised.make_classify_step(student, ctx.preprocess, ctx.mesh, key, tr.images, tr.labels,
                                       teacher_net=net, teacher_vars=teacher_vars,
                                       kd_temperature=4.0, kd_alpha=0.9)
  state, out["finetune_losses"] = run_steps(step, state, ctx, 2)
  out.update({f"finetune{k}": v for k, v in flat(state.params).items()})
  if jax.process_index() == 0:
    np.savez(out_path, **{k: np.asarray(v) for k, v in out.items()})


if __name__ == "__main__":
  main()
