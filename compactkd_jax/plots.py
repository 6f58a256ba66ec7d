"""The plots of a report: the MEASURED trade-off (test accuracy against MACs and against parameters,
one line per method across the budgets, seeds as min-max bars around their mean) and the predicted
damage of the best plan at every budget (what selection expected, on validation)."""
import io

import numpy as np

from compactkd_jax import files

# Method -> (label, marker and line style); unknown methods get a default style.
STYLES = {"ours": ("ours (block-wise KD)", "o-", "tab:red"),
          "scratch": ("same student, from scratch", "s--", "tab:blue"),
          "kd": ("same student, Hinton KD only", "^--", "tab:green"),
          "prune_total_cost": ("teacher pruned (Torch-Pruning), equal total cost", "D:",
                               "tab:purple"),
          "prune_epochs": ("teacher pruned (Torch-Pruning), equal fine-tune epochs", "d:",
                           "plum")}


def _figure(*grid, **kwargs):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt, plt.subplots(*grid, **kwargs)


def _save(plt, fig, path: str) -> None:
  fig.tight_layout()
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=120)
  plt.close(fig)
  files.write_bytes(path, png.getvalue())


def measured_tradeoff(points: list[dict], teacher: dict, path: str, title: str = "") -> None:
  """points: {"method", "macs", "params", "accuracies": [test accuracy per seed]};
  teacher: {"macs", "params", "accuracies"}. Writes a two-panel PNG to `path`."""
  plt, (fig, axes) = _figure(1, 2, figsize=(11, 4.4))
  for ax, cost, unit in ((axes[0], "macs", "MACs per image"), (axes[1], "params", "parameters")):
    for method in dict.fromkeys(p["method"] for p in points):
      label, style, color = STYLES.get(method, (method, "x-", "0.3"))
      mine = sorted((p for p in points if p["method"] == method), key=lambda p: p[cost])
      x = [p[cost] for p in mine]
      acc = [100 * np.asarray(p["accuracies"], float) for p in mine]
      mean = [a.mean() for a in acc]
      spread = np.array([[m - a.min() for m, a in zip(mean, acc)],
                         [a.max() - m for m, a in zip(mean, acc)]])
      ax.errorbar(x, mean, yerr=spread, fmt=style, color=color, capsize=3, markersize=6,
                  label=label)
    t_acc = 100 * np.asarray(teacher["accuracies"], float)
    ax.plot([teacher[cost]], [t_acc.mean()], "k*", markersize=12, label="teacher")
    ax.axhline(t_acc.mean(), color="k", lw=0.8, ls=":")
    ax.set_xlabel(unit)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
  axes[0].legend(fontsize=8, loc="lower right")
  if title:
    fig.suptitle(title, fontsize=10)
  _save(plt, fig, path)


def damage_curve(curve: list[dict], damage: str, metric: str, path: str) -> None:
  """The predicted damage of the best plan at every budget fraction (validation split)."""
  plt, (fig, ax) = _figure(1, 1, figsize=(5.2, 3.4))
  curve = [p for p in curve if p["predicted_damage"] is not None]
  scale, unit = (100, "summed accuracy drops (points)") if damage == "accuracy" else \
      (1, "summed normalized MSE")
  ax.plot([100 * p["fraction"] for p in curve], [scale * p["predicted_damage"] for p in curve],
          "-", color="0.4")
  ax.set_xlabel(f"budget (% of the teacher's {metric})")
  ax.set_ylabel(f"predicted damage\n{unit}")
  ax.grid(alpha=0.3)
  _save(plt, fig, path)
