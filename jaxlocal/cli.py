"""How the command line reports errors: one or two plain lines and an exit status, no traceback.

Errors of the project's own kinds are printed as ``error: <message>``: bad input (a config
value, a config typo, missing or malformed data, a workdir holding another run) exits with 2,
a failed run (a corrupt checkpoint, a diverged loss) with 1, Ctrl-C with 130 after saying which
epoch is saved. Anything else is a bug and keeps its traceback. ``--debug`` (or
``JAXLOCAL_DEBUG=1``) shows the traceback of every error.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import logging
import os
import sys

from absl import app, flags

from jaxlocal.checkpoint import CheckpointError
from jaxlocal.config_lib import ConfigError, moved_field_message
from jaxlocal.data.errors import DatasetFormatError, DatasetNotFoundError
from jaxlocal.train import RunInterrupted, TrainingDivergedError
from jaxlocal.workdir import WorkdirConflictError

USAGE, FAILURE, INTERRUPTED = 2, 1, 130
DEBUG_ENV = 'JAXLOCAL_DEBUG'
USAGE_ERRORS = (ConfigError, DatasetNotFoundError, DatasetFormatError, flags.Error,
                app.UsageError)
FAILURES = (CheckpointError, TrainingDivergedError)


def debug_requested(argv=None) -> bool:
  """``--debug`` on the command line or ``JAXLOCAL_DEBUG`` set to a true value."""
  argv = sys.argv if argv is None else argv
  return ('--debug' in argv or '--debug=true' in argv
          or os.environ.get(DEBUG_ENV, '').lower() in ('1', 'true', 'yes'))


def fail(message: str, status: int):
  """Prints ``error: message`` to stderr and exits with ``status``."""
  print(f'error: {message}', file=sys.stderr, flush=True)
  _quiet_shutdown()
  sys.exit(status)


def _quiet_shutdown() -> None:
  """Drops what orbax's abandoned read coroutines and threads print at exit after a failed
  restore (the error itself has been reported)."""
  sys.unraisablehook = lambda unraisable: None
  logging.getLogger('absl').setLevel(logging.CRITICAL)


@contextlib.contextmanager
def reported_errors(debug: bool = False):
  """Turns the project's errors raised inside into :func:`fail` (re-raised with ``debug``)."""
  try:
    yield
  except RunInterrupted as error:
    if debug:
      raise
    print(f'\n{error}', file=sys.stderr, flush=True)
    _quiet_shutdown()
    sys.exit(INTERRUPTED)
  except KeyboardInterrupt:
    if debug:
      raise
    print('\ninterrupted before training started; nothing was written.', file=sys.stderr)
    sys.exit(INTERRUPTED)
  except WorkdirConflictError as error:
    if debug:
      raise
    fail(str(error.for_cli()), USAGE)
  except USAGE_ERRORS as error:
    if debug:
      raise
    fail(str(error), USAGE)
  except FAILURES as error:
    if debug:
      raise
    fail(str(error), FAILURE)


def _config_file(argv):
  """The config of the file named by ``--config=<file>[:<arg>]``, or None."""
  for arg in argv:
    if arg.startswith('--config='):
      path, _, config_arg = arg[len('--config='):].partition(':')
      try:
        spec = importlib.util.spec_from_file_location('_jaxlocal_config', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_config(config_arg) if config_arg else module.get_config()
      except Exception:  # pylint: disable=broad-except  (no suggestions then)
        return None
  return None


def _config_fields(argv) -> list[str]:
  """Every field (dotted) of the config file named by ``--config=<file>[:<arg>]``, or []."""
  config = _config_file(argv)
  return [] if config is None else _dotted(config.to_dict())


def _dotted(tree: dict, prefix: str = '') -> list[str]:
  names = []
  for key, value in tree.items():
    names += _dotted(value, f'{prefix}{key}.') if isinstance(value, dict) else [prefix + key]
  return names


def _unknown_field(field: str, argv) -> str:
  config = _config_file(argv)
  moved = config is not None and moved_field_message(config.get('method', ''), field)
  if moved:
    return moved
  close = difflib.get_close_matches(field, _config_fields(argv), n=1, cutoff=0.6)
  hint = f'; did you mean --config.{close[0]}?' if close else ''
  return f'unknown config field {field!r} (--config.{field}){hint}'


def flag_error_message(error: Exception, argv) -> str:
  """absl's flag error, or ml_collections' override error, as one line; an unknown
  ``--config.<field>`` gets a did-you-mean, or where it moved (:data:`MOVED_FIELDS`)."""
  if isinstance(error, flags.UnrecognizedFlagError) and error.flagname.startswith('config.'):
    return _unknown_field(error.flagname[len('config.'):], argv)
  if not isinstance(error, flags.Error):  # ml_collections: an override of a missing field
    known = set(_config_fields(argv))
    for arg in argv:
      field = arg.partition('=')[0][len('--config.'):]
      if arg.startswith('--config.') and known and field not in known:
        return _unknown_field(field, argv)
  return str(error).split('\n')[0]


def parse_flags(argv):
  """absl flag parsing for ``app.run(flags_parser=...)``: a bad flag is one line, exit 2."""
  try:
    return flags.FLAGS(argv)
  except SyntaxError as error:  # in the config file
    if debug_requested(argv):
      raise
    fail(f'the config file {error.filename}, line {error.lineno}: {error.msg}', USAGE)
  except (flags.Error, AttributeError, KeyError) as error:
    if debug_requested(argv):
      raise
    fail(f'{flag_error_message(error, argv)} (python -m jaxlocal.main --helpshort lists the '
         'flags)', USAGE)
