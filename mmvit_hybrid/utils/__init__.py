from .checkpoint import register_checkpoint_loader
from .complexity import count_flops, count_params, format_count, outlook_attention_flops
from .data_check import check_dataset_paths
from .machine import cpu_name
from .memory import cpu_allocator_peak_mib

__all__ = [
    'check_dataset_paths', 'count_flops', 'count_params', 'cpu_allocator_peak_mib', 'cpu_name', 'format_count',
    'outlook_attention_flops', 'register_checkpoint_loader'
]
