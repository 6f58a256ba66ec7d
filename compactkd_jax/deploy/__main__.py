"""`python -m compactkd_jax.deploy --model <folder>`: a saved network (a workdir's export/ or
teacher/ folder, any folder with model.json) as LiteRT and ONNX files, fp32 and int8, checked
against JAX on validation images and timed on each runtime; writes them and deploy.json into
`<folder>/deploy/` (or --out) and prints the latency table. The validation images come from the
data the network was trained on: the workdir's config.json when the folder is inside a workdir,
else the default data (Fashion-MNIST) with the --data_* flags."""
import argparse
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converters' C++ logs are not ours

from compactkd_jax import artifacts, errors, files
from compactkd_jax.errors import UserError

CONFIG_FILE = "config.json"


def find_model(path: str) -> str:
  if os.path.exists(os.path.join(path, artifacts.SPEC_FILE)):
    return path
  inside = [d for d in ("export", "teacher") if os.path.exists(os.path.join(path, d,
                                                                            artifacts.SPEC_FILE))]
  hint = (f"; this looks like a workdir: give --model {os.path.join(path, inside[0])}"
          if inside else "; point --model at a workdir's export/ or teacher/ folder")
  raise UserError(f"no saved model in {path} ({artifacts.SPEC_FILE} missing){hint}")


def data_config(model_dir: str, args):
  """The data section of the workdir above `model_dir` (up to two levels), else the defaults with
  the --data_* flags."""
  from compactkd_jax import config as config_lib
  cfg = config_lib.default_config().data
  here = os.path.abspath(model_dir)
  for parent in (os.path.dirname(here), os.path.dirname(os.path.dirname(here))):
    saved = os.path.join(parent, CONFIG_FILE)
    if os.path.exists(saved):
      for key, value in files.read_json(saved, fix="rerun the run that wrote it").get(
          "data", {}).items():
        if key in cfg:
          cfg[key] = type(cfg[key])(value) if not isinstance(cfg[key], bool) else bool(value)
      return cfg
  cfg.source, cfg.name, cfg.data_dir = args.data_source, args.data_name, args.data_dir
  return cfg


def deploy_folder(args) -> dict:
  from compactkd_jax.deploy import evaluate, formats, runtimes
  runtimes_list = tuple(r for r in args.runtimes.split(",") if r)
  if not runtimes_list:
    raise UserError("--runtimes is empty; name onnxruntime, litert or both")
  runtimes.require(runtimes_list)
  if args.threads < 1 or args.throughput_batch < 0:
    raise UserError("--threads must be >= 1 and --throughput_batch >= 0")
  model_dir = find_model(args.model)
  net, variables, spec = artifacts.load_model(model_dir)
  from compactkd_jax import data
  dataset = data.load_dataset(data_config(model_dir, args))
  if tuple(dataset.image_shape) != tuple(spec["image_shape"]):
    raise UserError(f"the model takes {tuple(spec['image_shape'])} images, the data has "
                    f"{tuple(dataset.image_shape)}: give the data it was trained on (--data_*)")
  predict = formats.predict_fn(net, variables, artifacts.preprocess_of(spec))
  out = args.out or os.path.join(model_dir, "deploy")
  return out, evaluate.deploy(out, predict, dataset.image_shape, dataset.validation,
                              runtimes_list, args.threads,
                              throughput_batch=args.throughput_batch)


def table(result: dict) -> str:
  lines = [f"threads {result['threads']}; JAX validation accuracy "
           f"{100 * result['jax_val_accuracy']:.2f}% on {result['check_images']} images",
           f"{'runtime':<12} {'precision':<9} {'val acc':>8} {'median ms':>10} {'p90 ms':>8} "
           f"{'images/s':>9}"]
  for runtime, entries in result["runtimes"].items():
    for precision, e in entries.items():
      tp = f"{e['throughput']:,.0f}" if "throughput" in e else "-"
      lines.append(f"{runtime:<12} {precision:<9} {100 * e['val_accuracy']:>7.2f}% "
                   f"{e['latency']['median_ms']:>10.3f} {e['latency']['p90_ms']:>8.3f} {tp:>9}")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description="Export a saved network to LiteRT and ONNX (fp32, int8)"
                              " and measure it on those runtimes.")
  p.add_argument("--model", required=True, help="a folder with model.json (a workdir's export/ "
                 "or teacher/)")
  p.add_argument("--out", default="", help="where to write (default: <model>/deploy)")
  p.add_argument("--runtimes", default="onnxruntime,litert")
  p.add_argument("--threads", type=int, default=1)
  p.add_argument("--throughput_batch", type=int, default=0, help="> 0 also measures images/s")
  p.add_argument("--data_source", default="idx")
  p.add_argument("--data_name", default="fashion_mnist")
  p.add_argument("--data_dir", default="")
  args = p.parse_args(argv)
  warnings.filterwarnings("ignore", module="tensorflow")  # its deprecation notes, at every call
  out, result = errors.run_cli(deploy_folder, args, needs="to deploy", extra="deploy")
  print(table(result))
  print(f"written to {out}: {', '.join(result['files'].values())}, deploy.json")


if __name__ == "__main__":
  main()
