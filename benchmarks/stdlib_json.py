"""Run ``benchmarks.clients`` as if orjson were not installed.

aiomasto parses JSON with orjson when it can be imported (the ``speedups`` extra) and with the
standard library's ``json`` otherwise. The benchmark environment has orjson for the baselines,
so this measures aiomasto without it, in the same environment::

    python -m benchmarks.stdlib_json walk PLAN    # the arguments of benchmarks.clients
"""

import runpy
import sys

if __name__ == "__main__":
    # A None entry makes ``import orjson`` raise ImportError, as if it were not installed.
    sys.modules["orjson"] = None  # type: ignore[assignment]
    runpy.run_module("benchmarks.clients", run_name="__main__", alter_sys=True)
