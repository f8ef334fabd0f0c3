"""Run in a subprocess with 4 host devices: random well-typed expressions (the generator of
test_properties.py), compiled with sharded="B" and run under shard_map on 2 samples per device,
give the value and gradients of the unsharded loss in float64; those that need the whole batch
on one replica are E811 at compile time. Prints a count of each."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from jax.sharding import Mesh, PartitionSpec as P  # noqa: E402

import lossdsl  # noqa: E402
from lossdsl.sampling import random_inputs  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the generator of test_properties.py
from test_properties import expressions, spec_for  # noqa: E402

MESH = Mesh(np.array(jax.devices()), ("batch",))
COUNTS = {"agree": 0, "whole batch (E811)": 0}


@settings(max_examples=int(os.environ.get("LOSSDSL_SHARDED_EXAMPLES", "12")), deadline=None,
          suppress_health_check=list(HealthCheck), database=None)
@given(expr=st.sampled_from(["BC", "B", "C", "S"]).flatmap(lambda s: expressions(s, 3)), seed=st.integers(0, 2**31))
def sharded_agrees(expr, seed):
    src = spec_for(expr)
    args, _, _ = random_inputs(lossdsl.check(src), np.random.default_rng(seed), {"B": 8, "C": 4})
    try:
        sharded = lossdsl.compile(src, backend="jax", sharded="B")
    except lossdsl.LossError as e:
        assert "E811" in str(e), str(e)
        COUNTS["whole batch (E811)"] += 1
        return
    plain = lossdsl.compile(src, backend="jax")
    arrays = {k: jnp.asarray(v) for k, v in args.items()}
    per_sample = [n for n in arrays if n not in ("a", "b", "v")]  # v: float[C] is replicated

    ref_v, ref_g = jax.value_and_grad(lambda a, b: plain(a=a, b=b, **{n: arrays[n] for n in arrays if n not in "ab"}),
                                      argnums=(0, 1))(arrays["a"], arrays["b"])
    if not np.isfinite(ref_v):
        return

    def local(a, b, *rest):
        return sharded(a=a, b=b, v=arrays["v"], **dict(zip(per_sample, rest)))

    shmap = jax.shard_map(local, mesh=MESH, in_specs=(P("batch"),) * (2 + len(per_sample)), out_specs=P())
    v, g = jax.value_and_grad(lambda a, b: shmap(a, b, *[arrays[n] for n in per_sample]),
                              argnums=(0, 1))(arrays["a"], arrays["b"])
    scale = max(1.0, abs(float(ref_v)))
    np.testing.assert_allclose(v, ref_v, rtol=1e-9, atol=1e-9 * scale, err_msg=f"value of {expr}")
    for name, got, want in zip("ab", g, ref_g):
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9 * max(1.0, float(np.max(np.abs(want)))),
                                   err_msg=f"d/d{name} of {expr}")
    COUNTS["agree"] += 1


if __name__ == "__main__":
    sharded_agrees()
    print("jax random sharded:", ", ".join(f"{v} {k}" for k, v in COUNTS.items()))
    sys.exit(0)
