"""``spikeode.enable_compilation_cache``: a second process loads a diffrax program instead of compiling it."""

import json
import os
import subprocess
import sys

from spikeode._xla import CACHE_ENV

# A diffrax solve carries equinox's runtime checks: cacheable only with EQX_ON_ERROR=nan.
PROGRAM = """
import json, os, sys
import spikeode
directory = spikeode.enable_compilation_cache({path!r})
jax_imported = "jax" in sys.modules
import jax, jax.monitoring, jax.numpy as jnp
import diffrax as dfx
events = []
jax.monitoring.register_event_listener(lambda event, **kw: events.append(event))
y0 = jnp.ones(2)
solve = jax.jit(lambda y: dfx.diffeqsolve(dfx.ODETerm(lambda t, y, a: -y), dfx.Tsit5(), 0.0, 1.0, 0.1, y).ys)
events.clear()
solve(y0).block_until_ready()
print(json.dumps({{"directory": None if directory is None else str(directory), "jax_imported": jax_imported,
                  "eqx": os.environ.get("EQX_ON_ERROR"),
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "misses": events.count("/jax/compilation_cache/cache_misses")}}))
"""


def _run(path, **env):
    clean = {k: v for k, v in os.environ.items() if k not in (CACHE_ENV, "EQX_ON_ERROR")}
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(path=str(path))], capture_output=True, text=True,
                         env={**clean, **env}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_the_diffrax_program_from_the_cache(tmp_path):
    first = _run(tmp_path / "jax")
    assert first["misses"] >= 1 and first["hits"] == 0
    assert first["directory"] == str(tmp_path / "jax") and not first["jax_imported"] and first["eqx"] == "nan"
    assert any(p.name.startswith("jit__lambda") for p in (tmp_path / "jax").iterdir())  # the solve is stored
    second = _run(tmp_path / "jax")
    assert second["misses"] == 0 and second["hits"] == first["misses"]  # loaded, not compiled


def test_opt_out_leaves_everything_alone(tmp_path):
    out = _run(tmp_path / "jax", **{CACHE_ENV: "0"})
    assert out == {"directory": None, "jax_imported": False, "eqx": None, "hits": 0, "misses": 0}
    assert not (tmp_path / "jax").exists()
