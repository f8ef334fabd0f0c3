"""Run in a subprocess with 4 host devices: the sharded loss under shard_map and under jax.jit
over sharded global arrays gives the unsharded value and gradient."""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

import lossdsl  # noqa: E402
from dist_workers import ROOT, scenarios  # noqa: E402


def main() -> int:
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    rng = np.random.default_rng(0)
    W = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
    checked = 0
    for name, (spec, x, args, kwargs, _) in scenarios().items():
        plain = lossdsl.compile(spec, backend="jax")
        sharded = lossdsl.compile(spec, backend="jax", sharded="B")
        xs = jnp.asarray(x)
        arrays = {k: jnp.asarray(v) for k, v in args.items()}
        params = {k: jnp.asarray(v) for k, v in kwargs.items() if k not in ("sample_weight", "reduction")}
        sw = kwargs.get("sample_weight")
        extra = {"reduction": kwargs["reduction"]} if "reduction" in kwargs else {}

        def loss_plain(w):
            return plain(xs @ w, **arrays, **params, **extra, **({"sample_weight": jnp.asarray(sw)} if sw is not None
                                                                  else {}))

        ref_v, ref_g = jax.value_and_grad(loss_plain)(W)
        names = list(arrays)
        per_sample = [xs] + [arrays[n] for n in names] + ([jnp.asarray(sw)] if sw is not None else [])

        def local(w, xb, *rest):
            a = dict(zip(names, rest[:len(names)]))
            s = {"sample_weight": rest[len(names)]} if sw is not None else {}
            return sharded(xb @ w, **a, **params, **extra, **s)

        in_specs = (P(),) + (P("batch"),) * len(per_sample)
        shmap = jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=P())
        v, g = jax.value_and_grad(lambda w: shmap(w, *per_sample))(W)
        np.testing.assert_allclose(v, ref_v, rtol=1e-5, err_msg=f"{name}: value under shard_map")
        np.testing.assert_allclose(g, ref_g, rtol=1e-4, atol=1e-6, err_msg=f"{name}: gradient under shard_map")
        # jax.jit over global arrays sharded along the batch: no collective needed, none added.
        on_mesh = [jax.device_put(a, NamedSharding(mesh, P("batch"))) for a in per_sample]
        v2, g2 = jax.jit(jax.value_and_grad(lambda w: local(w, *on_mesh)))(W)
        np.testing.assert_allclose(v2, ref_v, rtol=1e-5, err_msg=f"{name}: value under jit with sharded arrays")
        np.testing.assert_allclose(g2, ref_g, rtol=1e-4, atol=1e-6, err_msg=f"{name}: gradient under jit")
        checked += 1
    checked += reductions(mesh)
    checked += bad_id_on_one_replica(mesh)
    print(f"jax: {checked} scenarios OK")
    return 0


REDUCTIONS = [
    "loss = max(p)", "loss = min(p)", "loss = sum(max(p, axis=B))", "loss = logsumexp(p)",
    "loss = sum(logsumexp(p, axis=B))", "loss = var(p)", "loss = std(p, ddof=1)", "loss = sum(var(p, axis=B))",
    "loss = norm(p)", "loss = norm(p, p=3)", "loss = norm(p, p=1)", "loss = sum(dot(p, q, axis=B))",
    "loss = sum(transpose(p) @ q)", "loss = sum(p) / B", "loss = mean(p * p, axis=(B, D)) + sum(mean(p, axis=D))",
]


def reductions(mesh) -> int:
    """Every reduction that sharding makes global, with ties across devices for max and min."""
    rng = np.random.default_rng(1)
    p = rng.normal(size=(8, 3)).astype(np.float32)
    p[1, 0] = p[6, 0] = p.max() + 1.0  # a tie for the max, on two devices
    p[2, 1] = p[7, 1] = p.min() - 1.0  # and for the min
    q = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    n = 0
    for body in REDUCTIONS:
        spec = f"pred p: float[B, D]\ninput q: float[B, D]\n{body} + 0 * sum(q)\n"
        plain = lossdsl.compile(spec, backend="jax")
        sharded = lossdsl.compile(spec, backend="jax", sharded="B")
        ref_v, ref_g = jax.value_and_grad(lambda a: plain(a, q))(jnp.asarray(p))
        shmap = jax.shard_map(lambda a, b: sharded(a, b), mesh=mesh, in_specs=(P("batch"), P("batch")),
                              out_specs=P())
        v, g = jax.value_and_grad(lambda a: shmap(a, q))(jnp.asarray(p))
        np.testing.assert_allclose(v, ref_v, rtol=1e-5, err_msg=f"{body}: value")
        np.testing.assert_allclose(g, ref_g, rtol=1e-4, atol=1e-6, err_msg=f"{body}: gradient")
        n += 1
    return n


def bad_id_on_one_replica(mesh) -> int:
    """An id outside its axis on one replica only, where no check can raise (shard_map traces):
    the loss is NaN on every replica, with a zero gradient, never the other replicas' number."""
    spec = "pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z), k))\n"
    sharded = lossdsl.compile(spec, backend="jax", sharded="B")
    shmap = jax.shard_map(lambda a, b: sharded(a, b), mesh=mesh, in_specs=(P("batch"), P("batch")), out_specs=P())
    z = jnp.asarray(np.random.default_rng(2).normal(size=(8, 4)), jnp.float32)
    good = jnp.asarray([0, 1, 2, 3, 0, 1, 2, 3])
    ref = lossdsl.compile(spec, backend="jax")(z, good)
    np.testing.assert_allclose(shmap(z, good), ref, rtol=1e-5, err_msg="in-range ids under shard_map")
    v, g = jax.value_and_grad(lambda a: shmap(a, good.at[7].set(9)))(z)
    assert np.isnan(float(v)) and np.all(np.asarray(g) == 0), (v, g)
    return 1


if __name__ == "__main__":
    sys.exit(main())
