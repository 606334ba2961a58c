from .volo_head import VOLOHead

__all__ = ['VOLOHead']
