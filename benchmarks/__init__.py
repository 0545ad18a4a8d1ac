"""mmio's benchmark suite: runnable programs that print tables (``python -m benchmarks``)."""
