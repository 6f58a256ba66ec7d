"""scripts/gpu/run.sh, the one script a GPU machine runs, in its --smoke mode on the CPU: the
benchmark (bf16) and the reproduction run end to end at tiny sizes and leave their tables
in the output folder, so the script cannot rot between GPU sessions."""
import os
import subprocess
import tarfile

import pytest

from conftest import REPO_ROOT


@pytest.mark.slow  # 3-5 minutes on 2 cores: a tiny ResNet-56 sweep, bench and baselines
def test_gpu_script_smoke(tmp_path, fmnist_dir):
  # REPRO_ARGS reaches the reproduction: its second budget is 0.3 here, not the config's 0.25.
  env = dict(os.environ, OUT=str(tmp_path / "out"), WORK=str(tmp_path / "work"), DEADLINE="1400",
             REPRO_ARGS="--config.select.budgets=(0.5,0.3)")
  proc = subprocess.run(["bash", "scripts/gpu/run.sh", "--smoke"], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=1500)
  out, work = tmp_path / "out", tmp_path / "work"
  logs = "".join((work / f).read_text()[-1500:] for f in ("failures.txt", "repro.log")
                 if (work / f).exists())
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
  # What the device tool brings back: at most 8 files, the small outputs packed in one.
  assert sorted(p.name for p in out.iterdir()) == [
      "bench_h200.md", "fashion_mnist_h200.md", "gpu_out.tar.gz"]
  assert "precision: bf16" in (out / "bench_h200.md").read_text()
  summary = (out / "fashion_mnist_h200.md").read_text()  # the sweep's summary over both budgets
  assert "budget sweep" in summary and "tradeoff.png" in summary, summary[:500]
  with tarfile.open(out / "gpu_out.tar.gz") as tar:
    packed = tar.getnames()
  assert "./repro/budget_macs_0.3/report.md" in packed and "./bench_smoke_bf16.md" in packed
  assert not [n for n in packed if "budget_macs_0.25" in n]
  assert not [n for n in packed if "checkpoints" in n], "checkpoints are not brought back"
  # The trained teacher comes back (to be committed); students and candidates do not.
  assert "./repro/teacher/variables/_CHECKPOINT_METADATA" in packed
  assert not [n for n in packed if "/budget_macs_" in n and "/variables" in n]
  assert not [n for n in packed if "/distill/candidates/" in n]
  assert not [n for n in packed if "jax_cache" in n], "the compilation cache stays there"


def test_gpu_script_runs_only_the_named_benchmarks(tmp_path):
  """BENCHES filters the benchmarks by name (a GPU session holds only some of them): a name that
  matches none runs none, and the script still packs and exits cleanly."""
  env = dict(os.environ, OUT=str(tmp_path / "out"), WORK=str(tmp_path / "work"),
             STAGES="bench", BENCHES="no_such_bench")
  proc = subprocess.run(["bash", "scripts/gpu/run.sh", "--smoke"], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  assert not list((tmp_path / "work").glob("bench_*"))
  assert (tmp_path / "out" / "gpu_out.tar.gz").exists()
