"""Run by tests/test_integrations.py in a fresh process per Keras backend
(KERAS_BACKEND=tensorflow|jax|torch): trains a small model with a spec that reads
metadata from y_true, changes a param every epoch, and saves and reloads the model."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

import lossdsl  # noqa: E402
import lossdsl.keras  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "group_weighted_cce.loss"


def data(rng, n=96):
    x = rng.normal(size=(n, 6)).astype("float32")
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    group = (x[:, 3] > 0).astype(int)
    return x, np.eye(3, dtype="float32")[labels], group


def main() -> int:
    backend = keras.backend.backend()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y, group = data(rng)
    loss = lossdsl.keras.Loss(SPEC, y_true=["y", "group"])
    packed = lossdsl.keras.pack(loss, y=y, group=group)
    assert packed.shape == (96, 4), packed.shape

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    seen = []

    def schedule(epoch, logs):
        weights = [1.0, 0.5 + 0.25 * epoch]
        seen.append(weights)
        return {"group_w": weights}

    before = float(model.evaluate(x, packed, verbose=0))
    history = model.fit(x, packed, epochs=4, batch_size=32, verbose=0,
                        callbacks=[lossdsl.keras.UpdateParams(loss, schedule)])
    assert len(seen) == 4
    np.testing.assert_allclose(loss.params["group_w"], [1.0, 1.25])
    # The last epoch trained with the last weights, which evaluate() also uses:
    after = float(model.evaluate(x, packed, verbose=0, batch_size=96))
    assert after < before, (before, after)
    # The Keras loss equals the compiled function on the same batch.
    logits = model.predict(x, verbose=0)
    direct = lossdsl.compile(SPEC, backend="numpy")(logits, y, group, group_w=np.array([1.0, 1.25]))
    np.testing.assert_allclose(after, direct, rtol=1e-4)
    # The params changed during fit without a retrace: the weights of the last epoch were used.
    assert history.history["loss"][-1] > 0

    # set_params checks each value as lossdsl.compile does and changes nothing on an error.
    for bad, code in (({"group_w": [1.0, 2.0, 3.0]}, "E805"), ({"group_w": "abc"}, "E803"),
                      ({"group_wt": [1.0, 2.0]}, "E806")):
        try:
            loss.set_params(**bad)
            raise AssertionError(f"no error for {bad}")
        except lossdsl.LossError as e:
            assert e.first.code == code, str(e)
    np.testing.assert_allclose(loss.params["group_w"], [1.0, 1.25])
    # A float where an int group id is declared is refused, not rounded.
    try:
        lossdsl.keras.pack(loss, y=y, group=group + 0.4)
        raise AssertionError("no error for float group ids")
    except lossdsl.LossError as e:
        assert e.first.code == "E803" and "`group`" in str(e), str(e)

    # A scalar spec cannot be weighted per sample: fit with sample_weight is refused, not rescaled.
    scalar = lossdsl.keras.Loss("pred yhat: float[B, C]\ntarget y: float[B, C]\nloss = mean((yhat - y)^2)\n",
                                spec_name="scalar.loss")
    weighted = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    weighted.compile(optimizer=keras.optimizers.SGD(0.0), loss=scalar)
    try:
        weighted.fit(x, y, sample_weight=np.full(96, 2.0, "float32"), epochs=1, verbose=0)
        raise AssertionError("no error for sample_weight with a scalar spec")
    except lossdsl.LossError as e:
        assert e.first.code == "E808", str(e)
    weighted.fit(x, y, epochs=1, verbose=0)  # without weights it trains

    # With a learning rate of 0 the model stays put, so each epoch's loss shows the param it saw:
    # the value set by the callback reaches the compiled step, epoch after epoch, with no retrace.
    scaled = lossdsl.keras.Loss("pred yhat: float[B, C]\ntarget y: float[B, C]\nparam scale: float = 1.0\n"
                                "loss = scale * mean((yhat - y)^2)\n", spec_name="scaled.loss")
    frozen = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    frozen.compile(optimizer=keras.optimizers.SGD(0.0), loss=scaled)
    base = float(frozen.evaluate(x, y, verbose=0, batch_size=96))
    h = frozen.fit(x, y, epochs=3, batch_size=96, verbose=0,
                   callbacks=[lossdsl.keras.UpdateParams(scaled, lambda epoch, logs: {"scale": epoch + 1.0})])
    np.testing.assert_allclose(h.history["loss"], [base, 2 * base, 3 * base], rtol=1e-5)

    # sample_weight reaches the per-sample loss... (this spec is a scalar: Keras cannot weight it)
    # ...so check it on a per-sample spec instead.
    per_sample = lossdsl.keras.Loss(ROOT / "examples" / "weighted_cce.loss", context={"class_w": np.ones(3)})
    probs = keras.ops.softmax(logits)
    w = np.linspace(0.5, 1.5, 96).astype("float32")
    value = float(per_sample(y, probs, sample_weight=w))
    expected = np.mean(w * -np.sum(y * np.log(np.clip(keras.ops.convert_to_numpy(probs), 1e-7, 1 - 1e-7)), 1))
    np.testing.assert_allclose(value, expected, rtol=1e-5)

    # A dict y_true when the loss is called directly; a missing field is a LossError naming it.
    direct_dict = float(loss({"y": y, "group": group}, logits))
    np.testing.assert_allclose(direct_dict, direct, rtol=1e-4)
    try:
        loss({"y": y}, logits)
        raise AssertionError("no error for a missing field")
    except lossdsl.LossError as e:
        assert "`group`" in str(e), str(e)
    for bad, needle in (({"y": y, "group": group, "weights": y}, "`weights`"),
                        ({"y": y, "group": group[:10]}, "`group` (axis 0)")):
        try:
            loss(bad, logits)
            raise AssertionError(f"no error for {sorted(bad)}")
        except lossdsl.LossError as e:
            assert needle in str(e), str(e)

    # A record input packed into y_true: the feature weight of examples/weighted_mse.loss.
    mse = lossdsl.keras.Loss(ROOT / "examples" / "weighted_mse.loss", y_true=["y", "x"])
    feat = rng.normal(size=96).astype("float32")
    reg = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1), keras.layers.Reshape(())])
    reg.compile(optimizer=keras.optimizers.Adam(0.05), loss=mse)
    target = x[:, 0]
    yt = lossdsl.keras.pack(mse, y=target, x={"feature": feat})
    first = float(reg.evaluate(x, yt, verbose=0, batch_size=96))
    reg.fit(x, yt, epochs=5, batch_size=32, verbose=0)
    pred = reg.predict(x, verbose=0)
    last = float(reg.evaluate(x, yt, verbose=0, batch_size=96))
    assert last < first
    np.testing.assert_allclose(last, np.mean(np.abs(feat) * (target - pred) ** 2), rtol=1e-4)

    # Saved and reloaded with its loss, params and spec.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)
        again = float(reloaded.evaluate(x, packed, verbose=0, batch_size=96))
        np.testing.assert_allclose(again, after, rtol=1e-5)
        assert isinstance(reloaded.loss, lossdsl.keras.Loss)
    config = loss.get_config()
    config["spec"] = config["spec"].replace("log_softmax", "log_sofmax")
    try:
        lossdsl.keras.Loss.from_config(config)
        raise AssertionError("no error for a broken spec")
    except lossdsl.LossError as e:
        assert "log_sofmax" in str(e)
    print(f"keras on {backend}: OK (loss {before:.4f} -> {after:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
