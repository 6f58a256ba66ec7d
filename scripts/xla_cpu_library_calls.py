"""Which of a model's operations XLA:CPU hands to a library (oneDNN, XNNPACK, YNNPACK) under the
XLA_FLAGS this process was started with: the optimized HLO of one forward + backward pass (eval
mode, the gradient of the summed logits with respect to the parameters) is compiled, and its custom
calls, its library fusions and the convolutions left to XLA's own emitter are counted. A flag that
leaves these counts as they are compiles the same program; that tells apart "the flag does nothing
here" from "the library is used and is not faster" in results/bench_xla_cpu_flags.md.

  XLA_FLAGS=--xla_cpu_use_onednn=true python scripts/xla_cpu_library_calls.py --model resnet56 \
    --width 0.25
"""
import argparse
import collections
import os
import re

import jax
import jax.numpy as jnp

from compactkd_jax.models import zoo


def library_ops(hlo_text: str) -> collections.Counter:
  """Custom-call targets and library fusions (a fusion whose backend config names its kind, e.g.
  "__ynn_fusion": XLA:CPU hands its body to YNNPACK), with counts."""
  found = collections.Counter(re.findall(r'custom_call_target="([^"]+)"', hlo_text))
  found.update(re.findall(r'"fusion_config":\{"kind":"(__\w+)"', hlo_text))
  return found


def convolutions(hlo_text: str) -> tuple[int, int]:
  """(convolutions inside library fusions' bodies, convolutions XLA:CPU's own emitter runs)."""
  library_bodies = set(re.findall(r'calls=%([\w.-]+)[^\n]*"fusion_config":\{"kind":"__', hlo_text))
  counts, body = [0, 0], None
  for line in hlo_text.splitlines():
    header = re.match(r"(?:ENTRY )?%([\w.-]+) .*\{$", line)
    if header:
      body = header.group(1)
    elif " convolution(" in line:
      counts[body not in library_bodies] += 1
  return counts[0], counts[1]


def forward_backward_hlo(model: str, width: float, batch: int) -> str:
  """The optimized HLO of the gradient of the summed logits (eval mode) on 28 x 28 x 1 images."""
  net = zoo.get_model(model, 10, width=width)
  x = jnp.zeros((batch, 28, 28, 1), jnp.float32)
  variables = net.init(jax.random.key(0), x)
  rest = {k: v for k, v in variables.items() if k != "params"}
  summed = lambda params: net.apply({"params": params, **rest}, x)[0].sum()  # (logits, features)
  return jax.jit(jax.grad(summed)).lower(variables["params"]).compile().as_text()


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--model", default="resnet56")
  p.add_argument("--width", type=float, default=0.25)
  p.add_argument("--batch", type=int, default=128)
  args = p.parse_args()
  hlo = forward_backward_hlo(args.model, args.width, args.batch)
  ops = library_ops(hlo)
  handed, left = convolutions(hlo)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS') or 'unset'}; {args.model} w{args.width:g}: "
        f"{left} of {handed + left} convolutions left to XLA, library ops: "
        f"{', '.join(f'{k} x{v}' for k, v in ops.most_common()) or 'none'}")


if __name__ == "__main__":
  main()
