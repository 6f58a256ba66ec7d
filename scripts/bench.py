"""Throughput of compactkd_jax's training steps against PyTorch (eager and torch.compile), measured
in one run on one machine, on real Fashion-MNIST batches:

  (a) the teacher training step (SGD + Nesterov, cross-entropy);
  (b) the parallel block-wise distillation step: the teacher once (inference BN, no gradient), every
      trained candidate of every block on its own block's normalized MSE, one optimizer;
  (c) one block-wise distillation "epoch" of N batches, sequential (per block, the teacher re-run up
      to that block for every batch, as most PyTorch block-wise KD code does) against parallel;
plus this machine's peak float32 matmul rate and each step's model-FLOP utilization.

  cd /work/main && .venv/bin/python scripts/bench.py    # about 3.5 minutes on a 2-core CPU
  .venv/bin/python scripts/bench.py --tiny              # smoke: about 4 minutes, almost all of it
                                                        # torch.compile; 1 with --skip_torch_compile

Writes results/bench_<machine>.md (machine: --machine, else e.g. "cpu2core") and prints the same.
Both frameworks start from the same weights (the Flax initialization copied into the PyTorch mirrors
of scripts/torch_baseline/models.py) and see the same batches; the first-step losses are printed as
a check that they compute the same thing. Compile time is the first call's wall time (trace +
compile + one step) and is excluded from the throughput, which is measured after warm-up.
"""
import argparse
import contextlib
import datetime
import functools
import os
import platform
import re
import shlex
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from compactkd_jax import config as config_lib  # noqa: E402
from compactkd_jax import blockwise as distill, cost, data, feed, supervised, train  # noqa: E402
from compactkd_jax.models import get_model, layers, zoo  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "scripts"))
from torch_baseline import finetune, models as tm  # noqa: E402

# The CPU default menu leaves dwsep and ir_* out (as configs/quickstart.py does); `--candidates
# all` is the full menu.
CPU_CANDIDATES = ",".join(config_lib.CPU_CANDIDATES)




def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="resnet20")
  p.add_argument("--width", type=float, default=0.5)
  p.add_argument("--image_shape", default="28,28,1",
                 help="H,W,C; Fashion-MNIST is zero-padded to HxW and repeated to C channels")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--steps", type=int, default=10, help="timed steps for (a) and (b)")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps after the first call")
  p.add_argument("--epoch_batches", type=int, default=10,
                 help="N, the batches of (c)'s epoch; 0 skips (c), whose sequential side "
                      "compiles one step per block (minutes on a GPU for ResNet-56)")
  p.add_argument("--candidates", default=CPU_CANDIDATES,
                 help="comma-separated candidate names, or 'all' for the full menu")
  p.add_argument("--skip_torch_compile", action="store_true")
  p.add_argument("--depthwise_form", choices=("auto", "convolution", "shifts"), default="auto",
                 help="auto: JAX's depthwise convs run as on this backend (shifted sums on CPU); "
                      "convolution: as lax grouped convolutions everywhere (the before/after check)")
  p.add_argument("--data_dir", default=data.DEFAULT_IDX_DIR)
  p.add_argument("--settle", type=float, default=0.5,
                 help="seconds of sleep before each timed loop, so the other framework's idle "
                      "worker threads stop spinning")
  p.add_argument("--precision", choices=("f32", "bf16"), default="f32",
                 help="bf16: JAX with train.precision=bf16, PyTorch under autocast(bfloat16)")
  p.add_argument("--channels_last", action="store_true",
                 help="PyTorch models and inputs in channels_last memory format (GPU)")
  p.add_argument("--tiny", action="store_true", help="smoke: width 0.125, batch 16, 2 steps")
  p.add_argument("--machine", help="name in results/bench_<machine>.md (default: from the device)")
  p.add_argument("--out", help="output file (default results/bench_<machine>.md)")
  args = p.parse_args(argv)
  if args.tiny:
    args.width, args.batch, args.steps, args.warmup, args.epoch_batches = 0.125, 16, 2, 1, 2
  args.image_shape = tuple(int(s) for s in args.image_shape.split(","))
  names = config_lib.default_config().distill.candidates if args.candidates == "all" \
      else args.candidates.split(",")
  args.candidates = tuple(names)
  return args


# ------------------------------------------------------------------------------------------------
# Data: the same real batches for both frameworks.
# ------------------------------------------------------------------------------------------------

def fit_images(images: np.ndarray, shape) -> np.ndarray:
  """uint8 NHWC images zero-padded (centered) to HxW and repeated to C channels."""
  h, w, c = shape
  if h < images.shape[1] or w < images.shape[2]:
    raise SystemExit(f"error: --image_shape {shape} is smaller than the data's {images.shape[1:]}")
  ph, pw = (h - images.shape[1]) // 2, (w - images.shape[2]) // 2
  images = np.pad(images, ((0, 0), (ph, h - images.shape[1] - ph), (pw, w - images.shape[2] - pw),
                           (0, 0)))
  return np.ascontiguousarray(np.repeat(images, c, axis=-1) if images.shape[-1] != c else images)


class Batches:
  """N batches of real Fashion-MNIST train images: index vectors for the JAX steps (which gather
  and normalize inside jit) and the same images, normalized, as NCHW tensors for PyTorch."""

  def __init__(self, args, mesh, torch_device):
    raw = data.load_idx_split(args.data_dir, "train")
    split = data.Split(fit_images(raw.images, args.image_shape), raw.labels)
    # No augmentation on either side: both steps see exactly the same pixels.
    self.preprocess = feed.Preprocess.from_split(split, crop_padding=0, flip=False)
    self.num_classes = int(split.labels.max()) + 1
    self.device_split = feed.DeviceSplit.create(split, mesh)
    count = max(args.steps, args.epoch_batches, 1)
    # One shard: block-local indices are the split's own indices, valid on the host too.
    host_idx = [self.device_split.train_batch(args.batch, 0, s) for s in range(count)]
    self.idx = [feed.put_global(i, feed.sharded(mesh)) for i in host_idx]
    mean, std = np.asarray(self.preprocess.mean), np.asarray(self.preprocess.std)
    self.torch = []
    for i in host_idx:
      x = (split.images[i].astype(np.float32) / 255.0 - mean) / std
      x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32))
      y = torch.from_numpy(split.labels[i].astype(np.int64))
      x = x.to(torch_device)
      if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
      self.torch.append((x, y.to(torch_device)))


# ------------------------------------------------------------------------------------------------
# Timing.
# ------------------------------------------------------------------------------------------------

class Timed:
  """Calls `one(i)` (step i) and `sync()`: first call, warm-up, then a timed loop."""

  def __init__(self, args, one, sync, batch):
    self.args, self.one, self.sync, self.batch = args, one, sync, batch

  def first(self):
    t0 = time.perf_counter()
    out = self.one(0)
    self.sync()
    return time.perf_counter() - t0, out

  def throughput(self, steps=None):
    steps = steps or self.args.steps
    for i in range(self.args.warmup):
      self.one(1 + i)
    self.sync()
    time.sleep(self.args.settle)
    t0 = time.perf_counter()
    for i in range(steps):
      self.one(i)
    self.sync()
    return steps * self.batch / (time.perf_counter() - t0)


def jax_runner(args, step, state, batches):
  """A `Timed` over a JAX step `(state, idx) -> (state, metrics)` whose state is donated."""
  box = {"state": state}

  def one(i):
    box["state"], metrics = step(box["state"], batches.idx[i % len(batches.idx)])
    return metrics

  return Timed(args, one, lambda: jax.block_until_ready(box["state"]), args.batch), box


def torch_runner(args, step, batches, sync):
  return Timed(args, lambda i: step(*batches.torch[i % len(batches.torch)]), sync, args.batch)


def peak_matmul(torch_device, sync, n: int = 2048, repeats: int = 10,
                precision: str = "f32") -> dict:
  """Best-of-`repeats` n x n x n matmul rate (float32, or bfloat16 for --precision bf16), in
  FLOP/s, for jnp.dot and torch.mm."""
  rng = np.random.default_rng(0)
  a, b = (rng.standard_normal((n, n), np.float32) for _ in range(2))
  flops = 2.0 * n ** 3
  dot = jax.jit(jnp.dot)
  jdtype, tdtype = ((jnp.bfloat16, torch.bfloat16) if precision == "bf16" else
                    (jnp.float32, torch.float32))
  ja, jb = jnp.asarray(a, jdtype), jnp.asarray(b, jdtype)
  dot(ja, jb).block_until_ready()
  best_jax = min(_timed(lambda: dot(ja, jb).block_until_ready()) for _ in range(repeats))
  ta, tb = (torch.from_numpy(v).to(torch_device, tdtype) for v in (a, b))
  torch.mm(ta, tb)
  sync()
  best_torch = min(_timed(lambda: (torch.mm(ta, tb), sync())) for _ in range(repeats))
  return {"n": n, "jax": flops / best_jax, "torch": flops / best_torch}


def _timed(fn) -> float:
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def try_compile(fn, what: str):
  """(result, None), or (None, 'n/a: <reason>') when torch.compile fails on this machine."""
  try:
    return fn(), None
  except Exception as e:  # inductor raises many types (missing compiler, unsupported op, ...)
    torch._dynamo.reset()
    reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:120] if str(e).strip() else ''}"
    print(f"torch.compile failed for {what}: {reason}", flush=True)
    return None, f"n/a: {reason}"


# ------------------------------------------------------------------------------------------------
# PyTorch side: the mirrors, the classification step, the block-wise distillation steps.
# ------------------------------------------------------------------------------------------------

def mirror(net, variables, in_channels, device):
  """The PyTorch mirror of `net` holding a copy of the Flax variables."""
  m = tm.BlockNet(net.to_json(), in_channels)
  tm.load_flax_variables(m, jax.device_get(variables))
  return m.to(device)


def torch_precision(args, module: nn.Module) -> nn.Module:
  """`module` in channels_last (--channels_last) and, for --precision bf16, running its forward
  under autocast(bfloat16) (AMP: float32 parameters and optimizer, bfloat16 convolutions)."""
  if args.channels_last:
    module = module.to(memory_format=torch.channels_last)
  if args.precision == "bf16":
    device = next(module.parameters()).device.type
    module.forward = torch.autocast(device_type=device, dtype=torch.bfloat16)(module.forward)
  return module


def torch_nmse(pred, target):
  """losses.normalized_mse."""
  return ((pred - target) ** 2).mean() / ((target ** 2).mean() + 1e-8)


class TorchDistill(nn.Module):
  """Every trained candidate of plan.menus as a PyTorch mirror (Flax initial weights copied), and
  the frozen teacher. forward(x, block) returns the candidates' normalized MSEs: block=None runs
  the teacher once and every candidate (parallel); block=b runs the teacher up to b and b's
  candidates only (sequential)."""

  def __init__(self, plan, cand_vars, teacher):
    super().__init__()
    self.teacher = teacher.eval().requires_grad_(False)
    self.cands = nn.ModuleDict()
    self.entries = []  # (block, previous part's name, key in self.cands)
    for b, cands in plan.menus:
      for c, spec in cands:
        m = tm.MIRRORS[spec.kind](plan.in_shape(b)[-1], **dict(spec.options))
        tm.load_flax_variables(m, {k: v[b][c] for k, v in jax.device_get(cand_vars).items()})
        key = f"{b}__{c}".replace(".", "_")  # ModuleDict keys may not contain dots
        self.cands[key] = m
        self.entries.append((b, plan.prev(b), key))

  def train(self, mode: bool = True):
    super().train(mode)
    self.teacher.eval()  # inference-mode BN, whatever mode the candidates are in
    return self

  def block_params(self, block):
    return [p for b, _, k in self.entries if b == block for p in self.cands[k].parameters()]

  def forward(self, x, block: str | None = None):
    with torch.no_grad():
      feats, h = {}, x
      for name in self.teacher.order:
        h = feats[name] = getattr(self.teacher, name)(h)
        if name == block:
          break
    return torch.stack([torch_nmse(self.cands[k](feats[p]), feats[b])
                        for b, p, k in self.entries if block is None or b == block])


def torch_distill_step(fn, opt, block=None):
  def step(x, y):
    opt.zero_grad(set_to_none=True)
    losses = fn(x, block) if block is not None else fn(x)
    losses.sum().backward()  # independent losses: each candidate gets its own gradient
    opt.step()
    return losses.detach().mean()
  return step


def distill_sgd(params, dcfg):
  return torch.optim.SGD(params, lr=dcfg.learning_rate, momentum=dcfg.momentum,
                         nesterov=dcfg.nesterov, weight_decay=dcfg.weight_decay)


# ------------------------------------------------------------------------------------------------
# The measurements.
# ------------------------------------------------------------------------------------------------

def bench_teacher(args, net, batches, mesh, device, sync):
  """(a): returns the row, the first-step losses and the teacher variables after the steps."""
  variables = supervised.init_variables(net, args.image_shape, seed=0)
  # The mirrors first: donating the JAX state deletes these very arrays.
  eager_model = torch_precision(args, mirror(net, variables, args.image_shape[-1], device).train())
  compiled_src = torch_precision(args,
                                 mirror(net, variables, args.image_shape[-1], device).train())
  tcfg = config_lib.default_config().teacher.train
  tcfg.precision = args.precision
  state = jax.device_put(train.create_state(variables, tcfg, 10_000), feed.replicated(mesh))
  key = jax.random.key(0)
  ds = batches.device_split
  flops = cost.xla_flops(functools.partial(supervised.classify_step, net=net, teacher_net=None,
                                           preprocess=batches.preprocess, mesh=mesh,
                                           precision=args.precision),
                         state, batches.idx[0], key, ds.images, ds.labels, None)
  step = supervised.make_classify_step(net, batches.preprocess, mesh, key, ds.images, ds.labels,
                                       precision=args.precision)
  row = {"name": f"(a) teacher train step (SGD, CE), {args.model} w{args.width:g}",
         "short": "(a) teacher step", "flops": flops}
  timed, box = jax_runner(args, step, state, batches)
  row["jax_compile"], m = timed.first()
  losses = {"jax": float(m["loss"])}
  row["jax"] = timed.throughput()
  sgd = lambda m: torch.optim.SGD(m.parameters(), lr=tcfg.learning_rate, momentum=tcfg.momentum,
                                  nesterov=tcfg.nesterov, weight_decay=tcfg.weight_decay)
  timed = torch_runner(args, finetune.classify_step(eager_model, sgd(eager_model)), batches, sync)
  _, loss = timed.first()
  losses["eager"] = float(loss)
  row["eager"] = timed.throughput()
  _compiled(args, row, losses, "teacher step", lambda: torch_runner(
      args, finetune.classify_step(torch.compile(compiled_src), sgd(compiled_src)), batches, sync))
  teacher_vars = supervised.variables_of(box["state"])
  return row, losses, teacher_vars


def _compiled(args, row, losses, what, make_timed):
  if args.skip_torch_compile:
    row["compile"] = row["compile_s"] = "n/a: skipped (--skip_torch_compile)"
    return
  timed, reason = try_compile(make_timed, what)
  if timed is not None:
    first, reason = try_compile(timed.first, what)
    if first is not None:
      row["compile_s"], loss = first
      losses["compile"] = float(loss)
      row["compile"] = timed.throughput()
  if reason:
    row["compile"] = row["compile_s"] = reason


def bench_distill(args, net, teacher_vars, batches, mesh, device, sync):
  """(b) and (c)."""
  plan = distill.distill_setup(net, args.image_shape, args.candidates)
  n_cands = sum(len(c) for _, c in plan.menus)
  dcfg = config_lib.default_config().distill.train
  cand_vars = distill.init_candidates(plan, seed=0)
  teacher_host = jax.device_get(teacher_vars)
  # PyTorch copies before any JAX state exists: donation deletes the arrays it was built from.
  torch_copy = lambda: torch_precision(args, TorchDistill(
      plan, cand_vars, mirror(net, teacher_host, args.image_shape[-1], device)).to(device).train())
  eager, compiled_src = torch_copy(), torch_copy()
  copy = lambda tree: jax.tree.map(jnp.copy, tree)
  key = jax.random.key(1)
  ds = batches.device_split
  step_fn = lambda sub, last: functools.partial(distill.distill_step, setup=sub,
                                                preprocess=batches.preprocess, mesh=mesh,
                                                last_block=last, precision=args.precision)
  make = lambda sub, last: distill.make_distill_step(sub, batches.preprocess, mesh, key, ds.images,
                                                     ds.labels, teacher_vars, last_block=last,
                                                     precision=args.precision)
  new_state = lambda v: jax.device_put(train.create_state(v, dcfg, 10_000), feed.replicated(mesh))

  # (b) the parallel step; the teacher runs to its last block (not the head), as in the pipeline.
  last = net.block_names[-1]
  state = new_state(copy(cand_vars))
  flops_par = cost.xla_flops(step_fn(plan, last), state, batches.idx[0], key, ds.images, ds.labels,
                             teacher_vars)
  row_b = {"name": f"(b) parallel distill step ({n_cands} candidates, {len(plan.menus)} blocks)",
           "short": "(b) parallel distill step", "flops": flops_par}
  par, _ = jax_runner(args, make(plan, last), state, batches)
  row_b["jax_compile"], m = par.first()
  losses = {"jax": float(m["loss"])}
  row_b["jax"] = par.throughput()
  eager_opt = distill_sgd(eager.cands.parameters(), dcfg)
  eager_par = torch_runner(args, torch_distill_step(eager, eager_opt), batches, sync)
  _, loss = eager_par.first()
  losses["eager"] = float(loss)
  row_b["eager"] = eager_par.throughput()
  _compiled(args, row_b, losses, "parallel distill step", lambda: torch_runner(
      args, torch_distill_step(torch.compile(compiled_src),
                               distill_sgd(compiled_src.cands.parameters(), dcfg)), batches, sync))

  # (c) an epoch of N batches: sequential (per block, teacher prefix re-run per batch) vs parallel.
  n = args.epoch_batches
  if n == 0:
    return [row_b], losses, n_cands
  blocks = [b for b, _ in plan.menus]
  seq_states, seq_steps, flops_seq, seq_compile = {}, {}, 0.0, 0.0  # flops: one batch, all blocks
  for b in blocks:
    seq_states[b] = new_state(distill.split_state_variables(copy(cand_vars), b))
    flops_seq += cost.xla_flops(step_fn(plan.only(b), b), seq_states[b], batches.idx[0], key,
                                ds.images, ds.labels, teacher_vars)
    seq_steps[b] = make(plan.only(b), b)
    t0 = time.perf_counter()
    seq_states[b], _ = seq_steps[b](seq_states[b], batches.idx[0])  # compile + warm-up
    jax.block_until_ready(seq_states[b])
    seq_compile += time.perf_counter() - t0

  def jax_seq_epoch():
    for b in blocks:
      for i in range(n):
        seq_states[b], _ = seq_steps[b](seq_states[b], batches.idx[i])
    jax.block_until_ready(seq_states)

  seq_opts = {b: distill_sgd(eager.block_params(b), dcfg) for b in blocks}
  seq_eager = {b: torch_distill_step(eager, seq_opts[b], block=b) for b in blocks}
  for b in blocks:  # warm-up, as for JAX
    seq_eager[b](*batches.torch[0])

  def eager_seq_epoch():
    for b in blocks:
      for i in range(n):
        seq_eager[b](*batches.torch[i])
    sync()

  row_seq = {"name": f"(c) epoch of {n} batches, sequential ({len(blocks)} block passes)",
             "jax": _epoch(args, jax_seq_epoch, n), "eager": _epoch(args, eager_seq_epoch, n),
             "jax_compile": seq_compile, "compile": "-", "compile_s": "-",
             "short": "(c) sequential epoch", "flops": flops_seq}
  row_par = {"name": f"(c) epoch of {n} batches, parallel (teacher once per batch)",
             "jax": par.throughput(n), "eager": eager_par.throughput(n),
             "jax_compile": "as (b)", "compile": "-", "compile_s": "-",
             "short": "(c) parallel epoch", "flops": flops_par}
  return [row_b, row_seq, row_par], losses, n_cands


def _epoch(args, run, n):
  time.sleep(args.settle)
  t0 = time.perf_counter()
  run()
  return n * args.batch / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------
# Report.
# ------------------------------------------------------------------------------------------------

COLUMNS = ["measurement", "JAX img/s", "PyTorch eager img/s", "torch.compile img/s", "JAX/eager",
           "JAX/compile", "compile s: JAX", "compile s: torch.compile"]


def _num(v, digits=0):
  return f"{v:,.{digits}f}" if isinstance(v, (int, float)) else str(v)


def table(rows) -> str:
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  for r in rows:
    ratio = lambda other: f"{r['jax'] / other:.2f}" if isinstance(other, float) else "-"
    cells = [r["name"], _num(r["jax"]), _num(r["eager"]), _num(r["compile"]), ratio(r["eager"]),
             ratio(r["compile"]), _num(r["jax_compile"], 1), _num(r["compile_s"], 1)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def mfu_lines(rows, peak, batch) -> list[str]:
  """Achieved FLOP/s = XLA FLOPs per image x images/s, against the machine's peak matmul rate.
  A row's "flops" are those of one batch (of every block's step, for the sequential epoch)."""
  lines = []
  for r in rows:
    parts = []
    for col, label in (("jax", "JAX"), ("eager", "eager"), ("compile", "torch.compile")):
      if isinstance(r[col], float):
        rate = r["flops"] / batch * r[col]
        parts.append(f"{label} {rate / 1e9:.1f} GFLOP/s = {100 * rate / peak:.1f}% MFU")
    lines.append(f"- {r['short']}: {r['flops'] / 1e9:.2f} GFLOP per batch; " + ", ".join(parts))
  return lines


def machine_name(args) -> str:
  if args.machine:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", args.machine)
  dev = jax.devices()[0]
  if dev.platform == "cpu":
    return f"cpu{os.cpu_count()}core"
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dev.device_kind}x{jax.device_count()}").lower()


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def main(argv=None):
  start, load_start = time.perf_counter(), os.getloadavg()[0]
  args = parse_args(argv)
  torch.set_num_threads(os.cpu_count())
  torch_device = "cuda" if torch.cuda.is_available() else "cpu"
  sync = torch.cuda.synchronize if torch_device == "cuda" else (lambda: None)
  mesh = feed.make_mesh()
  batches = Batches(args, mesh, torch_device)
  net = get_model(args.model, batches.num_classes,
                  **zoo.model_options(args.model, {"width": args.width}))
  feed.check_batch_size(args.batch, mesh, "--batch")
  print(f"{args.model} width {args.width:g}, images {args.image_shape}, batch {args.batch}; "
        f"measuring peak matmul ...", flush=True)
  # The smoke only checks the code path: a small matmul, because a CPU whose bf16 runs without AMX
  # (PyTorch then takes ~20 s per 2048^3 product) would spend minutes here.
  peak = peak_matmul(torch_device, sync, n=256 if args.tiny else 2048, precision=args.precision)
  form = {"convolution": layers.depthwise_as_convolution, "shifts": layers.depthwise_as_shifts}.get(
      args.depthwise_form, contextlib.nullcontext)()
  with form:  # the JAX steps are traced inside: their depthwise convs take this form
    print("(a) teacher step ...", flush=True)
    row_a, losses_a, teacher_vars = bench_teacher(args, net, batches, mesh, torch_device, sync)
    # (a)'s table is written now, so a run cut during (b)'s compiles still leaves it.
    fwd = cost.module_costs(net, args.image_shape)["flops"]  # per image, for the (a) cross-check
    write_report(args, [row_a], losses_a, {}, "?", peak, fwd, start, load_start, torch_device)
    print("(b), (c) distillation ...", flush=True)
    rows_bc, losses_b, n_cands = bench_distill(args, net, teacher_vars, batches, mesh,
                                               torch_device, sync)
  write_report(args, [row_a, *rows_bc], losses_a, losses_b, n_cands, peak, fwd, start,
               load_start, torch_device)


def write_report(args, rows, losses_a, losses_b, n_cands, peak, fwd, start, load_start,
                 torch_device):
  machine = machine_name(args)
  out = args.out or os.path.join(REPO, "results", f"bench_{machine}.md")
  dev = jax.devices()[0]
  best_peak = max(peak["jax"], peak["torch"])
  speed = lambda col: f"{rows[3][col] / rows[2][col]:.2f}x"
  fmt_losses = lambda d: ", ".join(f"{k} {v:.6f}" for k, v in d.items())
  cmd = "python " + shlex.join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
  text = "\n".join([
      f"# compactkd_jax training-step throughput: {machine}",
      "",
      f"Command (from the repository root): `{cmd}`",
      "",
      f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
      f"total run time {time.perf_counter() - start:.0f} s",
      f"- device: JAX on {jax.device_count()} x {dev.platform} ({dev.device_kind}; {cpu_model()}, "
      f"{os.cpu_count()} CPUs); PyTorch on {torch_device}",
      f"- versions: jax {jax.__version__}, jaxlib {_version('jaxlib')}, flax "
      f"{_version('flax')}, optax {_version('optax')}, torch {torch.__version__}, python "
      f"{platform.python_version()}",
      f"- load average (1 min) at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} "
      f"(anything else running on the machine skews the numbers, PyTorch's OpenMP most)",
      f"- threads: torch.set_num_threads({os.cpu_count()}) (os.cpu_count()); XLA uses all cores "
      f"(its default). Both run in this one process, one at a time, {args.settle:g} s apart.",
      f"- XLA_FLAGS: {os.environ.get('XLA_FLAGS') or 'unset (XLA defaults)'}",
      f"- workload: {args.model} width {args.width:g} on real Fashion-MNIST train images "
      f"({'x'.join(map(str, args.image_shape))}, normalized, no augmentation), batch {args.batch}, "
      f"{args.warmup} warm-up then {args.steps} timed steps for (a), (b); "
      f"candidates {','.join(args.candidates)} ({n_cands} trained: keep is the teacher block, "
      f"skip has no weights); SGD with Nesterov momentum 0.9 in both frameworks; JAX depthwise "
      f"convolutions as {_depthwise_words(args.depthwise_form)}",
      "- torch.compile: the model (a) / the teacher + candidates forward module (b) is compiled "
      "(default mode); backward through AOTAutograd, optimizer step eager",
      f"- precision: {args.precision} (bf16: JAX train.precision=bf16, float32 parameters and "
      f"losses; PyTorch autocast(bfloat16)); PyTorch memory format "
      f"{'channels_last' if args.channels_last else 'contiguous (NCHW)'}; peak matmul in "
      f"{'bfloat16' if args.precision == 'bf16' else 'float32'}",
      "",
      table(rows),
      "",
      *epoch_speedup_line(rows, speed),
      "",
      f"Peak {'bfloat16' if args.precision == 'bf16' else 'float32'} matmul ({peak['n']}^3, best "
      f"of 10): jnp.dot {peak['jax'] / 1e9:.1f} GFLOP/s, "
      f"torch.mm {peak['torch'] / 1e9:.1f} GFLOP/s; MFU below is against the higher, "
      f"{best_peak / 1e9:.1f} GFLOP/s. FLOPs are XLA's cost analysis of the lowered JAX step "
      f"(`cost.xla_flops`: forward, backward, optimizer; in-image taps; 2 per multiply-add), "
      f"applied to all three columns (same model, same batch). Cross-check for (a): forward "
      f"{fwd / 1e6:.2f} MFLOP/image x 3 x {args.batch} = {3 * fwd * args.batch / 1e9:.2f} GFLOP "
      f"vs {rows[0]['flops'] / 1e9:.2f} from the lowered step.",
      *mfu_lines(rows, best_peak, args.batch),
      "",
      f"Check, first-step loss from the same weights and batch: (a) {fmt_losses(losses_a)}; "
      f"(b) {fmt_losses(losses_b) or 'not measured yet'}.",
      ""])
  print(text)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "w") as f:
    f.write(text)
  print(f"wrote {out}")


def epoch_speedup_line(rows, speed) -> list[str]:
  if len(rows) < 4:
    return ["(c), the sequential against the parallel epoch, skipped (--epoch_batches 0)."]
  return [f"Parallel / sequential epoch speedup: JAX {speed('jax')}, PyTorch eager "
          f"{speed('eager')} (sequential re-runs the teacher prefix once per block per batch: "
          f"{rows[2]['flops'] / rows[3]['flops']:.2f}x the XLA FLOPs of the parallel epoch)."]


def _depthwise_words(form: str) -> str:
  if form == "convolution":
    return "lax grouped convolutions (--depthwise_form convolution)"
  if form == "shifts":
    return "shifted sums (--depthwise_form shifts)"
  return ("shifted sums (the CPU form, models/layers.py)" if jax.default_backend() == "cpu"
          else "lax grouped convolutions")


def _version(name: str) -> str:
  try:
    return __import__(name).__version__
  except (ImportError, AttributeError):
    return "?"


if __name__ == "__main__":
  main()
