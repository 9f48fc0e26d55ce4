"""The package's imports point one way: no cycle, and no module imports a layer above it."""

import ast
import pathlib

from conftest import REPO

PACKAGE = REPO / 'jaxlocal'
# Lowest first; a module may import only from its own layer or below. Modules not named here
# are in the layer of their package (e.g. jaxlocal.models.vgg in 'jaxlocal.models').
LAYERS = [
    {'jaxlocal.config_lib', 'jaxlocal.precision', 'jaxlocal.determinism', 'jaxlocal.flops',
     'jaxlocal.metrics', 'jaxlocal.plots', 'jaxlocal.progress', 'jaxlocal.checkpoint',
     'jaxlocal.workdir', 'jaxlocal.data', 'jaxlocal.parallel.mesh', 'jaxlocal.parallel.stages',
     'jaxlocal.schedules', 'jaxlocal.objectives.base', 'jaxlocal.rules.feedback',
     'jaxlocal.rules.hebbian', 'jaxlocal.ordering', 'jaxlocal.chunks', 'jaxlocal.sweeps'},
    {'jaxlocal.models', 'jaxlocal.objectives'},
    {'jaxlocal.blocks'},
    {'jaxlocal.optim', 'jaxlocal.rules.dtp', 'jaxlocal.semi_supervised', 'jaxlocal.phases',
     'jaxlocal.evaluate', 'jaxlocal.parallel.cost', 'jaxlocal.parallel.pipeline'},
    {'jaxlocal.train', 'jaxlocal.many_runs'},
    {'jaxlocal.methods'},
    {'jaxlocal.experiment', 'jaxlocal.recipes'},
    {'jaxlocal.cli', 'jaxlocal.tools', 'jaxlocal.main'},
]


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports() -> dict[str, set[str]]:
  """``{module: jaxlocal modules it imports}``, at any depth of its code."""
  modules = {module_name(p): p for p in PACKAGE.rglob('*.py')}
  graph = {}
  for name, path in modules.items():
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
      targets = []
      if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('jaxlocal'):
        targets = [f'{node.module}.{a.name}' for a in node.names] + [node.module]
      elif isinstance(node, ast.Import):
        targets = [a.name for a in node.names if a.name.startswith('jaxlocal')]
      for target in targets:
        if target in modules:
          found.add(target)
          break
    graph[name] = found - {name}
  return graph


def layer(module: str) -> int:
  for candidate in (module, *(module.rsplit('.', k)[0] for k in range(1, module.count('.')))):
    for index, members in enumerate(LAYERS):
      if candidate in members:
        return index
  raise AssertionError(f'{module} is in no layer of tests/test_imports.py: add it')


def test_no_import_cycle():
  graph = {m: d for m, d in imports().items() if m != 'jaxlocal'}  # the facade re-exports
  state = {}

  def visit(module, path):
    state[module] = 'open'
    for dep in sorted(graph.get(module, ())):
      assert state.get(dep) != 'open', 'import cycle: ' + ' -> '.join(path + [dep])
      if dep not in state:
        visit(dep, path + [dep])
    state[module] = 'done'

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])


def test_imports_point_down():
  upward = [f'{m} (layer {layer(m)}) imports {d} (layer {layer(d)})'
            for m, deps in sorted(imports().items()) if m != 'jaxlocal'
            for d in sorted(deps) if layer(d) > layer(m)]
  assert not upward, '\n'.join(upward)
