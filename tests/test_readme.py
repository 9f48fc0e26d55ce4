"""The README's Python example runs as written and trains."""

import re

from conftest import REPO


def readme_example() -> str:
  text = (REPO / 'README.md').read_text()
  match = re.search(r'<!-- api-example -->\s*```python\n(.*?)```', text, re.S)
  assert match, 'README.md lost its <!-- api-example --> python block'
  return match.group(1)


def test_readme_api_example_trains(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  namespace = {}
  exec(compile(readme_example(), 'README.md', 'exec'), namespace)
  final = namespace['final']
  assert final['test_accuracy'] > 0.85
  assert final['test/fc1/accuracy'] > 0.85  # the custom hinge objective trained its block
  assert (tmp_path / 'runs' / 'custom_objective' / 'metrics.jsonl').exists()


def test_readme_commands_match_ci():
  readme = (REPO / 'README.md').read_text()
  ci = (REPO / '.ci' / 'run').read_text()
  assert "pip install -e '.[dev]'" in ci and "pip install -e '.[dev]'" in readme
  assert ci.strip().splitlines()[-1] == 'pytest -q'
  assert '\npytest -q\n' in readme
