"""Machine description printed with every benchmark figure."""
import platform


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what :mod:`platform` reports."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
