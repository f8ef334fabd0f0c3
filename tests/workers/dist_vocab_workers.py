"""Workers for the split-vocabulary tests (`sharded="V"` on a language-model head): each replica
holds its rows of W (its columns where W is given as [D, V]) and its part of b, h (of rank 2 or
3) and the labels are the same on every replica, and the value and
the gradients to h and to the replica's own rows must equal the single-device loss's, in float64.

The cases run on both sides of the chunking threshold (chunks of 7 classes, which divide no
replica's part, and one chunk of the local classes), for plain cross-entropy, label smoothing in
its sum and mean forms with a z-loss, a bias and soft-capping, token weights with an ignore index,
a per-token loss (`reduction="none"`) under a random upstream gradient, W as [D, V] with a z-loss,
and h of rank 3 with a bias and label smoothing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

N, D, V = 12, 6, 40
HEAD = "pred h: float[N, D]\npred W: float[V, D]\ntarget y: int[N]\n"
SPECS = {
    "plain": HEAD + "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y))\n",
    "smoothing_sum_zloss_bias": HEAD
    + "pred b: float[V]\nparam eps: float = 0.1\n"
    + "let z = b + h @ transpose(W)\nlet logp = log_softmax(z, axis=V)\n"
    + "loss = mean((1 - eps) * -pick(logp, y) + eps * -sum(logp, axis=V) / V"
    + " + 0.001 * square(logsumexp(z, axis=V)))\n",
    "softcap_smoothing_mean_token_weights": HEAD
    + "pred b: float[V]\ninput tw: float[N]\n"
    + "let z = 2.0 * tanh((h @ transpose(W) + b) / 2.0)\nlet logp = log_softmax(z, axis=V)\n"
    + "let keep = y != -100\n"
    + "let ce = 0.9 * where(keep, -pick(logp, y), 0.0) - 0.1 * mean(logp, axis=V)\n"
    + "let w = where(keep, tw, 0.0)\nloss = sum(w * ce) / sum(w)\n",
    "per_token_ignore_index": HEAD
    + "let logp = log_softmax(h @ transpose(W), axis=V)\nloss = where(y >= 0, -pick(logp, y), 0.0)\n",
}
# W given as [D, V] (split along its columns), and h of rank 3 (B x T = N tokens)
SPECS["transposed_weight_zloss"] = (
    "pred h: float[N, D]\npred W: float[D, V]\ntarget y: int[N]\nlet z = h @ W\n"
    "loss = mean(-pick(log_softmax(z, axis=V), y) + 0.001 * square(logsumexp(z, axis=V)))\n"
)
SPECS["tokens_of_rank_3_bias_smoothing"] = (
    "pred h: float[B, T, D]\npred W: float[V, D]\npred b: float[V]\ntarget y: int[B, T]\n"
    "let logp = log_softmax(h @ transpose(W) + b, axis=V)\n"
    "loss = mean(0.9 * -pick(logp, y) - 0.1 * mean(logp, axis=V))\n"
)
B, T = 3, 4  # B * T = N
SIZES = {"chunked": {"chunk": 7, "min_logits": 0}, "one_chunk": {"chunk": 0, "min_logits": 1 << 40}}


def cases():
    """name -> (spec, inputs, preds, upstream gradient: a scalar, or one per token)."""
    out = {}
    for k, (name, spec) in enumerate(SPECS.items()):
        rng = np.random.default_rng(100 + k)
        x = {"h": rng.normal(size=(N, D)), "W": rng.normal(size=(V, D)), "y": rng.integers(0, V, size=N)}
        x["y"][:4] = [0, V - 1, 19, 20]  # the first class, the last, and both sides of a shard boundary
        if "float[D, V]" in spec:
            x["W"] = x["W"].T.copy()
        if "float[B, T, D]" in spec:
            x["h"], x["y"] = x["h"].reshape(B, T, D), x["y"].reshape(B, T)
        preds = ["h", "W"]
        if "pred b" in spec:
            x["b"] = rng.normal(size=V)
            preds.append("b")
        if "tw" in spec:
            x["tw"] = rng.uniform(0.5, 2.0, size=N)
            x["y"][5] = -100
        if name == "per_token_ignore_index":
            x["y"][5] = -1
            upstream = rng.uniform(-2.0, 3.0, size=N)
        else:
            upstream = np.asarray(rng.uniform(0.5, 2.0))
        out[name] = (spec, x, preds, upstream)
    return out


def vocabulary_axis(name: str, value) -> int | None:
    """The axis of an argument along V (split across the replicas), None if it has none."""
    if name == "b":
        return 0
    if name == "W":
        return list(value.shape).index(V)
    return None


def split(x: dict, lo: int, hi: int) -> dict:
    """A replica's arguments: its part of W (rows, or columns of a [D, V] W) and of b, the rest whole."""
    out = dict(x)
    for k, v in x.items():
        axis = vocabulary_axis(k, v)
        if axis is not None:
            out[k] = v[lo:hi] if axis == 0 else v[:, lo:hi]
    return out


def torch_vjp(f, x, preds, upstream):
    import torch

    args = {k: torch.tensor(v, requires_grad=k in preds) for k, v in x.items()}
    out = f(**args, reduction="none") if upstream.ndim else f(**args)
    grads = torch.autograd.grad(out, [args[p] for p in preds], torch.tensor(upstream))
    return out.detach().numpy(), {p: g.numpy() for p, g in zip(preds, grads)}


def single_device(backend="torch"):
    """(case, sizes) -> (value, gradients) of the loss compiled without `sharded=`, float64."""
    import lossdsl
    from lossdsl import lm_head

    out = {}
    for name, (spec, x, preds, upstream) in cases().items():
        for size_name, sizes in SIZES.items():
            with lm_head.options(**sizes):
                f = lossdsl.compile(spec, backend=backend)
            out[name, size_name] = torch_vjp(f, x, preds, upstream)
    return out


def torch_worker(rank: int, world: int, init: str, out_dir: str, parts: list[int]):
    """One replica with its rows of W: writes its value and gradients per case to rank<r>.json."""
    import torch.distributed as dist

    import lossdsl
    from lossdsl import lm_head

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    lo = sum(parts[:rank])
    hi = lo + parts[rank]
    result = {}
    done = False
    try:
        for name, (spec, x, preds, upstream) in cases().items():
            for size_name, sizes in SIZES.items():
                with lm_head.options(**sizes):
                    f = lossdsl.compile(spec, backend="torch", sharded="V")
                value, grads = torch_vjp(f, split(x, lo, hi), preds, upstream)
                result[f"{name}/{size_name}"] = {
                    "value": np.asarray(value).tolist(),
                    "grads": {p: g.tolist() for p, g in grads.items()},
                    "rows": [lo, hi],
                }
        # A label is checked against the whole vocabulary: V - 1 is read above, V is refused.
        spec, x, preds, upstream = cases()["plain"]
        bad = dict(split(x, lo, hi), y=np.where(np.arange(N) == 3, V, x["y"]))
        try:
            torch_vjp(lossdsl.compile(spec, backend="torch", sharded="V"), bad, preds, upstream)
            result["label_out_of_range"] = "accepted"
        except lossdsl.LossError as e:
            result["label_out_of_range"] = e.first.message
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
        done = True
    finally:
        dist.destroy_process_group()
    if done:
        from dist_workers import exit_skipping_teardown

        exit_skipping_teardown()


def jax_main() -> int:
    """Four host devices under shard_map, W and b split along V, h and y replicated."""
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    import lossdsl
    from lossdsl import lm_head

    mesh = Mesh(np.array(jax.devices()), ("vocab",))
    reference = single_device()
    checked = 0
    for name, (spec, x, preds, upstream) in cases().items():
        for size_name, sizes in SIZES.items():
            with lm_head.options(**sizes):
                f = lossdsl.compile(spec, backend="jax", sharded="V", group="vocab")
            names = list(x)
            specs = tuple(
                P(*[None] * axis, "vocab") if (axis := vocabulary_axis(k, x[k])) is not None else P() for k in names
            )
            per_token = bool(upstream.ndim)

            def local(*values, f=f, names=names, per_token=per_token):
                return f(**dict(zip(names, values)), **({"reduction": "none"} if per_token else {}))

            shmap = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P()))
            arrays = {k: jnp.asarray(v) for k, v in x.items()}

            def call(p, arrays=arrays, shmap=shmap, names=names):
                return shmap(*[p.get(k, arrays[k]) for k in names])

            value, pull = jax.vjp(call, {p: arrays[p] for p in preds})
            grads = pull(jnp.asarray(upstream, value.dtype))[0]
            want_value, want_grads = reference[name, size_name]
            what = f"{name}/{size_name}"
            np.testing.assert_allclose(np.asarray(value), want_value, rtol=1e-10, atol=1e-12, err_msg=f"{what}: value")
            for p in preds:
                np.testing.assert_allclose(
                    np.asarray(grads[p]), want_grads[p], rtol=1e-9, atol=1e-12, err_msg=f"{what}: gradient to {p}"
                )
            checked += 1
    print(f"jax vocabulary: {checked} cases OK")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(jax_main())
