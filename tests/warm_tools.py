"""Run the repository's tools in processes forked from one warm interpreter.

A fresh ``python tools/train.py`` spends 10-20 s on the 2-core CI machines importing torch and the
OpenMMLab stack before the tool does anything. The end-to-end tests that run tools many times (the
seg/cls demos, exact resume after SIGKILL, the tool-level faults) fork every run instead from one
server process that imported the third-party stack once (multiprocessing's ``forkserver`` with a
preload list). Each run is still its own process: its own ``sys.argv``, ``__main__``, environment,
working directory, output, exit status, and it can be SIGKILLed.

This package is deliberately not preloaded: every run imports ``mmvit_hybrid`` the way the tool
itself does, so a tool that forgets the import still fails here. tests/test_tools.py keeps running
``tools/train.py`` and ``tools/test.py`` in fresh interpreters, as a user does.
"""
import multiprocessing
import multiprocessing.forkserver
import os
import os.path as osp
import runpy
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRELOAD = ['torch', 'torchvision', 'mmengine.runner', 'mmcv.ops', 'mmdet.models', 'mmseg.models',
           'mmpretrain.models', 'pycocotools.coco']
ONE_THREAD = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')  # a run's env for one torch/BLAS thread
# the server itself never runs an OpenMP region (one thread), so each forked run may start its own
SERVER_ENV = dict(ONE_THREAD, PYTHONUNBUFFERED='1')


_SERVER = {}  # 'ctx': the forkserver context, once its server runs


def _context():
    """The forkserver context; the server starts on the first call and imports PRELOAD."""
    if 'ctx' not in _SERVER:
        ctx = multiprocessing.get_context('forkserver')
        ctx.set_forkserver_preload(PRELOAD)
        saved = dict(os.environ)
        os.environ.update(SERVER_ENV)  # the server inherits the environment it starts with
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        _SERVER['ctx'] = ctx
    return _SERVER['ctx']


def _child(script, args, env, log_path):
    """In the forked process: output to ``log_path``, then ``python script *args`` semantics."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = sys.stderr = open(1, 'w', buffering=1, closefd=False)  # line-buffered, one stream
    os.environ.clear()
    os.environ.update(env)
    os.chdir(ROOT)
    import torch
    torch.set_num_threads(int(env.get('OMP_NUM_THREADS') or os.cpu_count()))
    sys.argv = [script, *args]
    sys.path.insert(0, osp.dirname(script))  # what `python script` puts first
    runpy.run_path(script, run_name='__main__')


class ToolRun:
    """One forked run of ``script`` with ``args``; ``env`` is added to this process's environment."""

    def __init__(self, script, *args, env=None):
        self.script = script if osp.isabs(script) else osp.join(ROOT, script)
        fd, self.log_path = tempfile.mkstemp(prefix='tool_run_', suffix='.log')
        os.close(fd)
        full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
        self.process = _context().Process(target=_child,
                                          args=(self.script, [str(a) for a in args], full_env, self.log_path))
        self.process.start()

    def output(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def _final_output(self):
        """The whole output of the ended run; its log file is removed."""
        out = self.output()
        os.unlink(self.log_path)
        return out

    def wait(self, timeout=300):
        """The exit status (negative: killed by that signal); fails if the run is still going."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
            raise TimeoutError(f'{self.script} ran past {timeout} s:\n{self.output()[-3000:]}')
        return self.process.exitcode

    def kill_when(self, marker, timeout=300):
        """SIGKILL the run as soon as a line holding ``marker`` is written; the output so far."""
        deadline = time.monotonic() + timeout
        while marker not in self.output():
            if self.process.exitcode is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f'{marker!r} never appeared (exit {self.process.exitcode}):\n'
                                     f'{self.output()[-3000:]}')
            time.sleep(0.05)
        self.process.kill()
        self.process.join()
        return self._final_output()


def run_tool(script, *args, env=None, timeout=300):
    """``(exit status, output)`` of one forked run of ``script`` (a path relative to the repo)."""
    run = ToolRun(script, *args, env=env)
    code = run.wait(timeout)
    return code, run._final_output()
