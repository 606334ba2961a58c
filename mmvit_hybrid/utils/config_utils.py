"""Helpers for configs."""


def strip_pretrained(cfg):
    """Set every ``init_cfg`` of type Pretrained in a (nested) config to None, in place, so a model
    builds without weight files (FLOP counting, config tests)."""
    if isinstance(cfg, dict):
        if isinstance(cfg.get('init_cfg'), dict) and cfg['init_cfg'].get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for value in cfg.values():
            strip_pretrained(value)
    elif isinstance(cfg, list):
        for value in cfg:
            strip_pretrained(value)
