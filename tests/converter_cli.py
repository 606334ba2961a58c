"""Run a tools/model_converters/ script in this process, as ``python tools/model_converters/TOOL.py
ARGS`` would run it (same argument parsing, report and exit), for the converter tests."""
import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / 'tools/model_converters'


def run_converter(tool: str, *argv) -> str:
    """Run ``TOOL.py ARGV`` as ``__main__``; return what it printed on stdout."""
    script = TOOLS / f'{tool}.py'
    old, out = sys.argv, io.StringIO()
    sys.argv = [str(script), *map(str, argv)]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(script), run_name='__main__')
    finally:
        sys.argv = old
    return out.getvalue()


def converter_error(tool: str, *argv) -> str:
    """Run a converter that must fail; check that it ends with one line ``TOOL: error: ...`` and
    return that line."""
    with pytest.raises(SystemExit) as info:
        run_converter(tool, *argv)
    message = info.value.code
    assert isinstance(message, str) and '\n' not in message, message
    assert message.startswith(f'{tool}: error: '), message
    return message
