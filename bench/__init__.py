"""Benchmarks (``python -m bench.<name>``); figures go to docs/benchmarks.md."""
import os

# The benchmarks time computation: the result cache stays off unless one measures it
# (bench.cache turns it on for its own servers).
os.environ["HARMO_CACHE"] = "off"
