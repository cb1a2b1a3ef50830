"""The benchmarks' private nginx lives in the package now (``manyget bench --nginx``)."""

from manyget._bench._nginx import PrivateNginx, free_port, proc_cpu_seconds

_proc_cpu_seconds = proc_cpu_seconds  # the name benchmarks/engines.py imports

__all__ = ["PrivateNginx", "_proc_cpu_seconds", "free_port", "proc_cpu_seconds"]
