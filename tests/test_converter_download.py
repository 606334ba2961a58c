"""The converters read a URL as well as a path (tools/model_converters/checkpoint_source.py).

A local HTTP server (``http.server`` on 127.0.0.1, a free port, in a thread) serves the reference
models the converter tests build with random weights: PaddleClas's own DS-Net written with
``paddle.save`` (tests/paddle_reference.py), timm's ``volo_d1`` and timm's ``resnet50`` as
``model.safetensors`` (the Hugging Face file). Each tool converts from the URL; the result is
checked as the path tests check it (logits against the reference, BoT50 stages against the
ResNet) and against the file converted from the path. Then the failures: a server that announces
more bytes than it sends and closes, an HTML page, a checkpoint of another architecture, a 404.
Each ends the tool with one line, and leaves no output and nothing in the cache folder.
"""
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from converter_cli import converter_error as tool_error
from converter_cli import run_converter as run_tool

HTML = b'<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>\n'

pytestmark = pytest.mark.usefixtures('one_thread')


class _Handler(BaseHTTPRequestHandler):
    """``routes``: URL path -> (mode, file); mode 'file', 'truncated' (announces the whole file,
    sends half of it, closes) or 'html' (a 200 text/html page, as a sign-in wall sends)."""

    def __init__(self, *args, routes: dict, hits: list, **kwargs):
        self.routes, self.hits = routes, hits
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        if self.path not in self.routes:
            self.send_error(404)
            return
        mode, path = self.routes[self.path]
        body = HTML if mode == 'html' else Path(path).read_bytes()
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8' if mode == 'html' else 'application/octet-stream')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if mode == 'truncated' else body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def server():
    """``(base URL, routes, hits)`` of a server on 127.0.0.1 at a free port."""
    routes, hits = {}, []
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), partial(_Handler, routes=routes, hits=hits))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', routes, hits
    httpd.shutdown()
    httpd.server_close()


def serve(server, url_path: str, file, mode: str = 'file') -> str:
    base, routes, _ = server
    routes[url_path] = (mode, file)
    return base + url_path


def everything_in(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*')) if folder.exists() else []


# ------------------------------------------------------------------ the three converters from a URL
def test_dsnet_pdparams_from_url(server, tmp_path_factory, tmp_path, capsys):
    """The PaddleClas file by URL: the same tensors as from the path, the reference's logits; the
    cache keeps one file, a second run reads it instead of the server."""
    from test_dsnet_converter import compare, make_converted, our_model
    tiny = make_converted('tiny', tmp_path_factory)
    url = serve(server, '/dygraph/legendary_models/DSNet_tiny_pretrained.pdparams', tiny['src'])
    cache, dst = tmp_path / 'cache', tmp_path / 'out' / 'dsnet_t.pth'
    run_tool('dsnet_to_mmvit', url, dst, '--cache-dir', cache, '-q')
    assert f'downloading {url}' in capsys.readouterr().err  # the progress bar goes to stderr too
    from_path = torch.load(tiny['dst'], weights_only=True)['state_dict']
    from_url = torch.load(dst, weights_only=True)
    assert from_url['meta']['converted_from'] == url
    assert from_url['state_dict'].keys() == from_path.keys()
    assert all(torch.equal(from_url['state_dict'][k], v) for k, v in from_path.items())
    compare(our_model('tiny', dst), tiny['ref'], 224, tiny['seed'])
    assert (tmp_path / 'out' / 'dsnet_t_backbone.pth').is_file()
    cached = everything_in(cache)
    assert len(cached) == 1 and cached[0].endswith('-DSNet_tiny_pretrained.pdparams'), cached
    hits = len(server[2])
    out = run_tool('dsnet_to_mmvit', url, tmp_path / 'again.pth', '--cache-dir', cache, '-q', '--no-progress')
    assert 'using the cached download' in out and len(server[2]) == hits


def test_volo_safetensors_from_url(server, tmp_path):
    """timm's ``volo_d1`` as the Hugging Face ``model.safetensors``: converted from the URL, our
    VOLO + VOLOHead give timm's logits."""
    from safetensors.torch import save_file
    from test_volo import assert_parity, random_timm_volo
    from mmvit_hybrid.models import VOLO, VOLOHead
    ref = random_timm_volo('d1', img_size=64, seed=4)
    src = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(src))
    url = serve(server, '/timm/volo_d1_224.sail_in1k/resolve/main/model.safetensors', src)
    dst, cache = tmp_path / 'volo_d1.pth', tmp_path / 'cache'
    out = run_tool('volo_to_mmvit', url, dst, '--cache-dir', cache, '--no-progress')
    assert 'converted' in out
    state = torch.load(dst, weights_only=True)['state_dict']
    with torch.device('meta'):
        backbone = VOLO('d1', img_size=64, out_type='cls_and_tokens')
        head = VOLOHead(1000, backbone.embed_dims[-1])
    backbone.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith('backbone.')}, strict=True, assign=True)
    head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith('head.')}, strict=True, assign=True)
    assert_parity(ref, backbone.eval(), head.eval(), torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5)))
    assert [p.endswith('-model.safetensors') for p in everything_in(cache)] == [True]


def test_resnet_safetensors_from_url(server, tmp_path):
    """timm's ``resnet50`` (random weights and BN statistics) by URL: BoT50's c2-c4 equal its stages."""
    import timm
    from safetensors.torch import save_file
    from test_resnet_converter import IMG, assert_stages_agree, bot50, randomize_norms, timm_resnet_stages
    torch.manual_seed(6)
    r50 = randomize_norms(timm.create_model('resnet50', pretrained=False), seed=6)
    src = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in r50.state_dict().items()}, str(src))
    url = serve(server, '/timm/resnet50.a1_in1k/resolve/main/model.safetensors', src)
    dst = tmp_path / 'bot50.pth'
    run_tool('resnet_to_botnet', url, dst, '--arch', '50', '--img-size', IMG, IMG, '--cache-dir', tmp_path / 'cache',
             '--no-progress')
    x = torch.randn(2, 3, IMG, IMG)
    assert_stages_agree(bot50(dst), timm_resnet_stages(r50, x), x)


# ------------------------------------------------------------------ failures leave nothing behind
TOOL_ARGS = {'dsnet_to_mmvit': (), 'volo_to_mmvit': (), 'resnet_to_botnet': ('--arch', '50')}


@pytest.fixture(scope='module')
def dsnet_tiny(tmp_path_factory):
    """A real (random) PaddleClas DS-Net-T: its .pdparams is the payload of the failure cases."""
    from test_dsnet_converter import make_converted
    return make_converted('tiny', tmp_path_factory)


@pytest.mark.parametrize('tool', list(TOOL_ARGS))
def test_truncated_download_is_an_error_and_kept_nowhere(tool, server, dsnet_tiny, tmp_path):
    """The server announces the whole file, sends half of it and closes (Python's http.client
    then returns an empty read, not an error): one line naming the byte counts."""
    url = serve(server, f'/truncated/{tool}/DSNet_tiny_pretrained.pdparams', dsnet_tiny['src'], 'truncated')
    size = dsnet_tiny['src'].stat().st_size
    cache, dst = tmp_path / 'cache', tmp_path / 'out.pth'
    message = tool_error(tool, url, dst, '--cache-dir', cache, '--no-progress', *TOOL_ARGS[tool])
    assert f'stopped at {size // 2} of the {size} bytes' in message, message
    assert everything_in(cache) == [] and everything_in(tmp_path) in ([], ['cache']), everything_in(tmp_path)


@pytest.mark.parametrize('tool', list(TOOL_ARGS))
def test_html_page_is_an_error_and_kept_nowhere(tool, server, tmp_path):
    url = serve(server, f'/html/{tool}/d1_224_84.2.pth.tar', None, 'html')
    cache, dst = tmp_path / 'cache', tmp_path / 'out.pth'
    message = tool_error(tool, url, dst, '--cache-dir', cache, '--no-progress', *TOOL_ARGS[tool])
    assert 'sent an HTML page, not a checkpoint file' in message, message
    assert everything_in(cache) == [] and not dst.exists()


@pytest.mark.parametrize('tool, match', [
    ('volo_to_mmvit', 'keys are not VOLO parameters'),
    ('resnet_to_botnet', 'not a ResNet checkpoint'),
])
def test_other_architecture_is_an_error_and_kept_nowhere(tool, match, server, dsnet_tiny, tmp_path):
    """A complete, valid checkpoint of another model (DS-Net-T in the SteveTsui/DS-Net layout):
    the converter's own one-line error; the download is not kept in the cache."""
    from test_dsnet_converter import steve_state_from_paddle
    state = steve_state_from_paddle({k: v.numpy() for k, v in dsnet_tiny['ref'].state_dict().items()})
    src = tmp_path / 'other.pth'
    torch.save({'model': state}, src)
    url = serve(server, f'/other/{tool}/checkpoint.pth', src)
    cache, dst = tmp_path / 'cache', tmp_path / 'out' / 'out.pth'
    message = tool_error(tool, url, dst, '--cache-dir', cache, '--no-progress', *TOOL_ARGS[tool])
    assert match in message, message
    assert everything_in(cache) == [] and not dst.parent.exists()


def test_dsnet_of_a_volo_checkpoint_writes_neither_output(server, tmp_path):
    from test_volo import random_timm_volo
    src = tmp_path / 'volo.pth'
    torch.save(random_timm_volo('d1', img_size=64).state_dict(), src)
    url = serve(server, '/other/dsnet/volo.pth', src)
    cache, dst = tmp_path / 'cache', tmp_path / 'out' / 'dsnet.pth'
    message = tool_error('dsnet_to_mmvit', url, dst, '--cache-dir', cache, '--no-progress')
    assert 'not a DS-Net checkpoint' in message, message
    assert everything_in(cache) == [] and not dst.parent.exists()


def test_missing_url_and_missing_path(server, tmp_path):
    base = server[0]
    message = tool_error('volo_to_mmvit', f'{base}/nothing/here.pth', tmp_path / 'o.pth', '--cache-dir',
                         tmp_path / 'cache', '--no-progress')
    assert 'cannot download' in message and '404' in message, message
    message = tool_error('volo_to_mmvit', tmp_path / 'missing.pth', tmp_path / 'o.pth')
    assert 'missing.pth is not a file' in message, message
    assert everything_in(tmp_path / 'cache') == [] and not (tmp_path / 'o.pth').exists()


def test_outputs_are_written_all_or_none(tmp_path):
    """``save_outputs``: when the second object cannot be saved, the first file is not there either."""
    import runpy
    from converter_cli import TOOLS
    save_outputs = runpy.run_path(str(TOOLS / 'checkpoint_source.py'))['save_outputs']
    first, second = tmp_path / 'model.pth', tmp_path / 'sub' / 'model_backbone.pth'
    with pytest.raises(Exception):
        save_outputs([(first, {'w': torch.ones(2)}), (second, {'w': lambda: None})])  # a lambda does not pickle
    assert everything_in(tmp_path) == ['sub']
    save_outputs([(first, {'w': torch.ones(2)}), (second, {'w': torch.zeros(2)})])
    assert torch.equal(torch.load(second, weights_only=True)['w'], torch.zeros(2)) and first.is_file()
