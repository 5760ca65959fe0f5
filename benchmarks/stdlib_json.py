"""Run ``benchmarks.clients`` as if the ``speedups`` extra (msgspec, orjson) were not installed.

aiomasto decodes JSON with msgspec and orjson when they can be imported (the ``speedups``
extra) and with the standard library's ``json`` otherwise. The benchmark environment has them
for the baselines, so this measures aiomasto without them, in the same environment::

    python -m benchmarks.stdlib_json walk PLAN    # the arguments of benchmarks.clients
"""

import runpy
import sys

if __name__ == "__main__":
    # A None entry makes ``import orjson`` raise ImportError, as if it were not installed.
    sys.modules["orjson"] = None  # type: ignore[assignment]
    sys.modules["msgspec"] = None  # type: ignore[assignment]
    runpy.run_module("benchmarks.clients", run_name="__main__", alter_sys=True)
