"""scripts/xla_cpu_library_calls.py: its HLO counts against the architecture's own arithmetic and a
hand-written HLO fragment."""
import os
import sys

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
import xla_cpu_library_calls as calls  # noqa: E402  (a script, not a package)

# Two library fusions (one YNNPACK, one whose body holds a convolution), a loop fusion and a
# convolution in the entry computation.
HLO = """\
%fused_computation.1 (p0: f32[8,8], p1: f32[8,8]) -> f32[8,8] {
  %dot.1 = f32[8,8]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_computation.2 (p0: f32[1,8,8,4], p1: f32[3,3,4,4]) -> f32[1,8,8,4] {
  %convolution.1 = f32[1,8,8,4]{3,2,1,0} convolution(%p0, %p1), window={size=3x3 pad=1_1x1_1}
}

%fused_computation.3 (p0: f32[8]) -> f32[8] {
  %negate.1 = f32[8]{0} negate(%p0)
}

ENTRY %main.9 (a: f32[8,8], x: f32[1,8,8,4], w: f32[3,3,4,4]) -> f32[1,8,8,4] {
  %ynn_fusion.1 = f32[8,8]{1,0} fusion(%a, %a), kind=kCustom, calls=%fused_computation.1, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
  %ynn_fusion.2 = f32[1,8,8,4]{3,2,1,0} fusion(%x, %w), kind=kCustom, calls=%fused_computation.2, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
  %loop_fusion = f32[8]{0} fusion(%b), kind=kLoop, calls=%fused_computation.3
  %convolution.2 = f32[1,8,8,4]{3,2,1,0} convolution(%ynn_fusion.2, %w), window={size=3x3 pad=1_1x1_1}
  %cc = f32[8] custom-call(%b), custom_call_target="__onednn$matmul"
}
"""


def test_counts_a_hand_written_fragment():
  assert calls.library_ops(HLO) == {"__ynn_fusion": 2, "__onednn$matmul": 1}
  assert calls.convolutions(HLO) == (1, 1)


def test_every_convolution_of_resnet20_is_counted_once():
  # ResNet-20 (option A shortcuts): the stem and 2 per block, 19 convolutions forward; backward,
  # 19 weight gradients and 18 input gradients (the stem's input needs none). Wherever this jaxlib
  # puts them, library or XLA's emitter, each is counted once.
  handed, left = calls.convolutions(calls.forward_backward_hlo("resnet20", 0.25, batch=16))
  assert handed + left == 19 + 19 + 18
