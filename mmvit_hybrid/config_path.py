"""Where this package's configs are installed, for configs outside the repository that inherit them.

The configs ship inside the package, under ``mmvit_hybrid/.mim/configs`` (links to the repository's
``configs/`` in a checkout or an editable install, regular files in the wheel), as mmdet's do.
mmengine 0.10 resolves ``pkg::path`` bases only for the packages of its fixed ``MODULE2PACKAGE``
table (``mmengine/config/utils.py``), and reads ``_base_`` before ``custom_imports``, so
``'mmvit_hybrid::demo/...'`` cannot work; a plain path can. Two documented mmengine ways to give it:

* an environment variable, substituted by mmengine before ``_base_`` is read (the config stays
  the same on every machine)::

      export MMVIT_HYBRID_CONFIGS=$(python -m mmvit_hybrid.config_path)
      # my_config.py
      _base_ = ['{{$MMVIT_HYBRID_CONFIGS:}}/dsnet/mask_rcnn_dsnet_s_coco.py']

* the absolute path itself::

      python -m mmvit_hybrid.config_path dsnet/mask_rcnn_dsnet_s_coco.py   # prints it
      _base_ = ['/.../site-packages/mmvit_hybrid/.mim/configs/dsnet/mask_rcnn_dsnet_s_coco.py']

The inherited config's own bases (``../_base_/...``, ``mmdet::...``) resolve from its installed
location, and its ``custom_imports`` imports this package, so the libraries' own ``tools/train.py``
and ``tools/test.py`` run it unchanged.
"""
import os.path as osp
import sys

CONFIGS_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '.mim', 'configs')


def get_config_path(name: str = '') -> str:
    """Absolute path of the installed config ``name`` (e.g. ``'dsnet/dsnet_t_in1k.py'``), or of the
    configs folder when ``name`` is empty. Raises ``FileNotFoundError`` for a name not shipped."""
    path = osp.join(CONFIGS_DIR, name) if name else CONFIGS_DIR
    if not osp.exists(path):
        raise FileNotFoundError(f'{name!r} is not a config of mmvit_hybrid (looked for {path}); '
                                f'the configs are under {CONFIGS_DIR}')
    return path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or argv[:1] in (['-h'], ['--help']):
        print('usage: python -m mmvit_hybrid.config_path [CONFIG]\n\nPrints the absolute path of an '
              'installed config of mmvit_hybrid (e.g. demo/mask_rcnn_dsnet_t_demo.py), or of the '
              'configs folder without CONFIG.')
        return 0 if argv[:1] in (['-h'], ['--help']) else 2
    try:
        print(get_config_path(argv[0] if argv else ''))
    except FileNotFoundError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
