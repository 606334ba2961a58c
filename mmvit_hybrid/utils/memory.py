"""Peak memory of one step on the CPU, from the allocator rather than the process's resident size."""
from typing import Callable

import torch


def cpu_allocator_peak_mib(step: Callable[[], object]) -> float:
    """Peak of the bytes torch's CPU allocator holds during ``step()`` above what it held before.

    ``torch.profiler`` with ``profile_memory=True`` records every op's own allocations minus frees
    and the frees made outside ops; summed in time order they give the bytes held at each moment.
    Unlike the resident set size, this does not depend on what glibc keeps cached after frees, so
    repeated runs give the same number.

    Args:
        step (Callable): The work to measure (e.g. one forward, or forward and backward).

    Returns:
        float: MiB above the start, >= 0.
    """
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    held = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        held += event.cpu_memory_usage if event.name == '[memory]' else event.self_cpu_memory_usage
        peak = max(peak, held)
    return peak / 2**20
