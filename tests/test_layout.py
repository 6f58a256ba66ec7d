"""The package's layering, read from the import statements of its source (docs/design.md, "Layers"):
no import cycle, phases that never import each other, a pure models/ package, and at most 8 floors
from `main` down. Every import counts, those inside functions too. A subpackage (models/, deploy/,
phases/) is one node of the graph, as the README's picture draws it."""
import ast
import functools
import os

from compactkd_jax.config_keys import PHASES

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compactkd_jax")
SUBPACKAGES = ("models", "deploy", "phases")
MAX_FLOORS = 8


def _modules() -> dict[str, str]:
  """{dotted name relative to the package ("phases.select"): path}."""
  out = {}
  for root, _, names in os.walk(PACKAGE):
    for name in names:
      if name.endswith(".py"):
        rel = os.path.relpath(os.path.join(root, name), PACKAGE)[:-3].replace(os.sep, ".")
        out[rel.removesuffix(".__init__") if rel.endswith("__init__") else rel] = os.path.join(
            root, name)
  return out


def _imports(path: str, modules) -> set[str]:
  """The package's modules that the file at `path` imports, anywhere in it."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("compactkd_jax"):
      base = node.module.removeprefix("compactkd_jax").lstrip(".")
      for alias in node.names:
        full = f"{base}.{alias.name}".lstrip(".")
        found.add(full if full in modules else base)
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.startswith("compactkd_jax."):
          found.add(alias.name.removeprefix("compactkd_jax."))
  return {m for m in found if m}


@functools.lru_cache(maxsize=None)
def module_graph() -> dict[str, set[str]]:
  modules = _modules()
  graph = {m: _imports(p, modules) - {m} for m, p in modules.items() if m}
  # The registry loads every phase by name (importlib): those are its imports.
  graph["phases"] |= {f"phases.{name}" for name in PHASES}
  return graph


def _node(module: str) -> str:
  head = module.split(".")[0]
  return head if head in SUBPACKAGES else module


def node_graph() -> dict[str, set[str]]:
  out = {}
  for m, deps in module_graph().items():
    out.setdefault(_node(m), set()).update(_node(d) for d in deps)
  return {n: deps - {n} for n, deps in out.items()}


def _floors(graph) -> dict[str, int]:
  """Floor 1: imports nothing of the package; else one above the highest it imports."""
  floors, visiting = {}, set()

  def floor(n):
    if n in floors:
      return floors[n]
    assert n not in visiting, f"import cycle through {n}"
    visiting.add(n)
    floors[n] = 1 + max((floor(d) for d in graph.get(n, ())), default=0)
    visiting.discard(n)
    return floors[n]

  for n in graph:
    floor(n)
  return floors


def test_every_phase_of_the_list_is_a_module_with_run():
  modules = _modules()
  assert {m.split(".")[1] for m in modules if m.startswith("phases.")} == set(PHASES)
  for name in PHASES:
    tree = ast.parse(open(modules[f"phases.{name}"]).read())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body), name


def test_phases_never_import_each_other():
  for m, deps in module_graph().items():
    if m.startswith("phases."):
      assert not {d for d in deps if d.startswith("phases")}, (m, deps)


def test_models_import_nothing_above_them():
  for m, deps in module_graph().items():
    if m.startswith("models"):
      assert all(d.startswith("models") or d == "errors" for d in deps), (m, deps)


def test_no_cycle_and_at_most_eight_floors_from_main():
  floors = _floors(node_graph())  # raises on a cycle
  assert floors["main"] <= MAX_FLOORS, sorted(floors.items(), key=lambda kv: -kv[1])


def test_the_layering_check_finds_a_cycle_and_a_deep_chain():
  """The checks above can fail: a made-up cycle and a made-up 9-floor chain."""
  try:
    _floors({"a": {"b"}, "b": {"a"}})
    raise AssertionError("the cycle went unnoticed")
  except AssertionError as e:
    assert "cycle" in str(e)
  chain = {str(i): {str(i + 1)} for i in range(8)}
  assert _floors(chain)["0"] == 9
