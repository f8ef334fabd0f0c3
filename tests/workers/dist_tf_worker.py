"""Run in a subprocess: MirroredStrategy over two logical CPU devices, a custom training step
with the sharded loss, against one step on one device with the whole batch."""

from __future__ import annotations

import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import lossdsl  # noqa: E402
from dist_workers import scenarios  # noqa: E402


def main() -> int:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    w0 = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    checked = 0
    for name, (spec, x, args, kwargs, split) in scenarios().items():
        extra = {k: v for k, v in kwargs.items() if k != "sample_weight"}
        sw = kwargs.get("sample_weight")
        plain = lossdsl.compile(spec, backend="tf")
        W = tf.Variable(w0)
        with tf.GradientTape() as tape:
            ref = plain(tf.constant(x) @ W, **args, **extra, **({"sample_weight": sw} if sw is not None else {}))
        expected = w0 - 0.5 * tape.gradient(ref, W).numpy()

        sharded = lossdsl.compile(spec, backend="tf", sharded="B")
        with strategy.scope():
            Wd = tf.Variable(w0)
            opt = tf.keras.optimizers.SGD(0.5)
        names = list(args)

        def value_fn(ctx, split=split, x=x, args=args, sw=sw):
            i = ctx.replica_id_in_sync_group
            lo, hi = sum(split[:i]), sum(split[:i + 1])
            parts = [tf.constant(x[lo:hi])] + [tf.constant(args[n][lo:hi]) for n in names]
            return tuple(parts + ([tf.constant(sw[lo:hi])] if sw is not None else []))

        data = strategy.experimental_distribute_values_from_function(value_fn)

        @tf.function
        def step(xb, *rest, sharded=sharded, extra=extra, has_sw=sw is not None):
            a = dict(zip(names, rest[:len(names)]))
            s = {"sample_weight": rest[len(names)]} if has_sw else {}
            with tf.GradientTape() as tape:
                v = sharded(xb @ Wd, **a, **extra, **s)
            opt.apply_gradients(zip(tape.gradient(v, [Wd]), [Wd]))  # sums the replicas' gradients
            return v

        values = strategy.experimental_local_results(strategy.run(step, args=data))
        for v in values:
            np.testing.assert_allclose(float(v), float(ref), rtol=1e-5, err_msg=f"{name}: value on a replica")
        np.testing.assert_allclose(Wd.numpy(), expected, rtol=1e-4, atol=1e-6, err_msg=f"{name}: params after step")
        checked += 1
    print(f"tensorflow: {checked} scenarios OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
