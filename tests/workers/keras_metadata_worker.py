"""Run by tests/test_integrations.py in a fresh process per Keras backend
(KERAS_BACKEND=tensorflow|jax|torch): everything around the loss that reads y_true or the
params — metrics, class_weight, validation, per-group metrics, checkpoints written mid-fit,
set_params from a user's own callback — is right, or refused with a LossError."""

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
GROUP_CCE = ROOT / "examples" / "group_weighted_cce.loss"

# Per-sample cross-entropy weighted by the sample's group: the shape Keras can weigh further.
PER_SAMPLE = """
pred   logits:  float[B, C]
target y:       float[B, C]
input  group:   int[B]
param  group_w: float[G] = [1.0, 0.5]
loss = group_w[group] * -sum(y * log_softmax(logits), axis=C)
"""
CE = """
pred   logits: float[B, C]
target y:      float[B, C]
loss = -sum(y * log_softmax(logits), axis=C)
"""


def data(rng, n=96):
    x = rng.normal(size=(n, 6)).astype("float32")
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    group = (x[:, 3] > 0).astype(int)
    return x, np.eye(3, dtype="float32")[labels], group


def dense(units=3):
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(units)])


def refused(code, needle, fn):
    try:
        fn()
    except lossdsl.LossError as e:
        assert e.first.code == code, str(e)
        assert needle in str(e), str(e)
        return
    raise AssertionError(f"no {code} error")


def ce_numpy(logits, y):
    z = logits - logits.max(1, keepdims=True)
    return -np.sum(y * (z - np.log(np.exp(z).sum(1, keepdims=True))), 1)


def main() -> int:
    backend = keras.backend.backend()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y, group = data(rng)
    labels = y.argmax(1)

    # ---- packed y_true: plain metrics and class_weight are refused; wrapped metrics are right
    packed_loss = lossdsl.keras.Loss(PER_SAMPLE, y_true=["y", "group"], spec_name="per_sample.loss")
    packed = lossdsl.keras.pack(packed_loss, y=y, group=group)
    # Refused when the model is compiled: Keras builds (JAX, torch: traces) its compiled metrics
    # before the loss is first called, where a plain metric would fail with its own shape error.
    for metrics in (["accuracy"], ["mse"], [keras.metrics.MeanAbsoluteError()]):
        label = {"accuracy": "accuracy", "mse": "mse"}.get(metrics[0], "mean_absolute_error")
        refused("E813", f"the metric `{label}`", lambda: dense().compile(optimizer="adam", loss=packed_loss,
                                                                        metrics=metrics))
    refused("E813", "`mse`", lambda: dense().compile(optimizer="adam", loss=packed_loss, weighted_metrics=["mse"]))
    m = dense()
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss=packed_loss, metrics=[packed_loss.metric("mse", name="mse")])
    m.fit(x, packed, epochs=1, batch_size=96, verbose=0)
    result = m.evaluate(x, packed, batch_size=96, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["mse"], np.mean((m.predict(x, verbose=0) - y) ** 2), rtol=1e-5)
    m = dense()
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss=packed_loss)
    refused("E813", "class_weight", lambda: m.fit(x, packed, epochs=1, verbose=0, class_weight={0: 1.0, 1: 2.0, 2: 1.0}))

    m = dense()
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss=packed_loss, metrics=[packed_loss.metric("accuracy")])
    m.fit(x, packed, epochs=2, batch_size=32, verbose=0)
    result = m.evaluate(x, packed, batch_size=96, verbose=0, return_dict=True)
    true_acc = float(np.mean(m.predict(x, verbose=0).argmax(1) == labels))
    np.testing.assert_allclose(result["categorical_accuracy"], true_acc, rtol=1e-6)

    # ---- metadata through the model's inputs: metrics, class_weight, validation are right
    loss = lossdsl.keras.Loss(PER_SAMPLE, inputs=["group"], spec_name="per_sample.loss")
    base = dense()
    model = lossdsl.keras.MetadataModel(base)
    per_group = lossdsl.keras.Metric(CE, like=loss, by="group", groups=2, name="ce")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, metrics=["accuracy", per_group])
    inputs = {"x": x, "group": group}
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    history = model.fit(inputs, y, epochs=2, batch_size=32, verbose=0, class_weight=cw,
                        validation_data=(inputs, y))
    logs = {k: v[-1] for k, v in history.history.items()}
    for key in ("loss", "accuracy", "ce_0", "ce_1", "val_loss", "val_accuracy", "val_ce_0", "val_ce_1"):
        assert key in logs, sorted(logs)
    logits = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(logits, base.predict(x, verbose=0), rtol=1e-6)
    ce = ce_numpy(logits.astype(np.float64), y)
    np.testing.assert_allclose(logs["val_accuracy"], np.mean(logits.argmax(1) == labels), rtol=1e-6)
    for g in (0, 1):
        np.testing.assert_allclose(logs[f"val_ce_{g}"], ce[group == g].mean(), rtol=1e-4)
    # class_weight weighs each sample by its plain label, as Keras does for any loss:
    w = np.array([cw[c] for c in labels])
    weighted = model.evaluate(inputs, y, sample_weight=w, batch_size=96, verbose=0, return_dict=True)
    np.testing.assert_allclose(weighted["loss"], np.mean(w * np.array([1.0, 0.5])[group] * ce), rtol=1e-4)
    # Without the metadata the loss says where it should come from.
    plain = dense()
    plain.compile(optimizer="adam", loss=loss)
    refused("E807", "MetadataModel", lambda: plain.fit(x, y, epochs=1, verbose=0))
    refused("E807", "no `group`", lambda: model.fit({"x": x, "grp": group}, y, epochs=1, verbose=0))
    refused("E803", "never rounded", lambda: model.fit({"x": x, "group": group + 0.4}, y, epochs=1, verbose=0))
    # Float ids are refused wherever their dtype or values can be read, never rounded: a y_true
    # dict (before Keras makes it float), and a packed y_true built by hand, called directly.
    refused("E803", "the y_true dict holds", lambda: lossdsl.keras.Loss(PER_SAMPLE, spec_name="p.loss")(
        {"y": y, "group": group + 0.4}, logits))
    by_hand = np.concatenate([y, (group + 0.4)[:, None]], 1).astype("float32")
    refused("E803", "packed y_true holds", lambda: packed_loss(by_hand, logits))
    np.testing.assert_allclose(  # a list of ints in a y_true dict is read as one array
        float(lossdsl.keras.Loss(PER_SAMPLE, spec_name="p.loss")({"y": y, "group": group.tolist()}, logits)),
        np.mean(np.array([1.0, 0.5])[group] * ce), rtol=1e-5)
    # A refusal inside fit leaves the model as it was (the JAX trainer holds its weights apart).
    np.testing.assert_allclose(model.predict(inputs, verbose=0), logits, rtol=1e-6)

    # ---- an out-of-range group id inside fit (which always traces): with check_values=True the
    # index check stays in the step and names E812; the model keeps its weights.
    checked_loss = lossdsl.keras.Loss(PER_SAMPLE, inputs=["group"], spec_name="per_sample.loss", check_values=True)
    guarded = lossdsl.keras.MetadataModel(dense())
    guarded.compile(optimizer=keras.optimizers.Adam(0.01), loss=checked_loss, jit_compile=False)
    guarded.fit(inputs, y, epochs=1, verbose=0)
    kept = guarded.predict(inputs, verbose=0)
    try:
        guarded.fit({"x": x, "group": np.where(group == 1, 7, 0)}, y, epochs=1, batch_size=96, verbose=0)
        raise AssertionError("no error for group id 7")
    except lossdsl.LossError as e:  # torch: the eager check itself
        assert e.first.code == "E812", str(e)
    except Exception as e:  # tf.function / jax.jit: the framework's runtime error carrying the text
        assert "E812" in str(e) and "group" in str(e), str(e)[-2000:]
    if backend != "jax":  # (a JAX step that fails inside XLA has already taken the weights out)
        np.testing.assert_allclose(guarded.predict(inputs, verbose=0), kept, rtol=1e-6)
    if backend == "tensorflow":  # XLA would drop the check: refused when the step is traced
        xla = lossdsl.keras.MetadataModel(dense())
        xla.compile(optimizer="adam", loss=checked_loss, jit_compile=True)
        refused("E812", "jit_compile=False", lambda: xla.fit(inputs, y, epochs=1, verbose=0))

    # ---- without check_values: inside fit an out-of-range group id (given through the inputs)
    # and a fractional id in a y_true packed by hand are refused (E812 / E803) where the values
    # can be read, and make the loss NaN where they cannot (a traced step, XLA), never a number.
    def right_or_nan(code, make, fit_data, jit_compile):
        mdl = make()
        xla = backend == "tensorflow" and mdl.jit_compile  # "auto" as Keras resolved it
        try:
            h = mdl.fit(*fit_data, epochs=1, batch_size=96, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()])
        except lossdsl.LossError as e:  # an eager step (Keras on torch)
            assert e.first.code == code, str(e)
            return "refused"
        except Exception as e:  # a graph assertion (tf.function without XLA) carrying the text
            assert code in str(e) and not xla, str(e)[-2000:]
            return "asserted"
        assert np.isnan(h.history["loss"][-1]), (jit_compile, h.history)
        return "nan" if backend != "tensorflow" or xla else "nan without XLA"

    plain_loss = lossdsl.keras.Loss(PER_SAMPLE, inputs=["group"], spec_name="per_sample.loss")
    for jit_compile in ("auto", False, True) if backend == "tensorflow" else ("auto",):
        def make_meta():
            mdl = lossdsl.keras.MetadataModel(dense())
            mdl.compile(optimizer=keras.optimizers.Adam(0.01), loss=plain_loss, jit_compile=jit_compile)
            return mdl

        def make_packed(metrics=()):
            mdl = dense()
            mdl.compile(optimizer=keras.optimizers.Adam(0.01), loss=packed_loss, jit_compile=jit_compile,
                        metrics=list(metrics))
            return mdl

        def packed_metrics():  # a wrapped Keras metric and a spec's metric, per group
            return [packed_loss.metric("accuracy"),
                    lossdsl.keras.Metric(CE, like=packed_loss, by="group", groups=2, name="ce")]

        seen = right_or_nan("E812", make_meta, ({"x": x, "group": np.where(group == 1, 7, 0)}, y), jit_compile)
        assert seen in {"torch": ["refused"], "jax": ["nan"]}.get(backend, ["asserted", "nan"]), (jit_compile, seen)
        hand_packed = np.concatenate([y, (group + 0.4)[:, None]], 1).astype("float32")
        seen = right_or_nan("E803", make_packed, (x, hand_packed), jit_compile)
        assert seen in (["refused"] if backend == "torch" else ["nan", "nan without XLA"]), (jit_compile, seen)
        if backend != "torch":  # the metrics read the same rounded ids: NaN too, never a number
            mdl = make_packed(packed_metrics())
            h = mdl.fit(x, hand_packed, epochs=1, batch_size=96, verbose=0)
            for key in ("categorical_accuracy", "ce_0", "ce_1"):
                assert np.isnan(h.history[key][-1]), (jit_compile, key, h.history)
            h = make_packed(packed_metrics()).fit(x, packed, epochs=1, batch_size=96, verbose=0)
            for key in ("categorical_accuracy", "ce_0", "ce_1"):
                assert np.isfinite(h.history[key][-1]), (jit_compile, key, h.history)
        # ids in range train as before: a finite loss that falls
        h = make_meta().fit(inputs, y, epochs=3, batch_size=96, verbose=0)
        assert np.all(np.isfinite(h.history["loss"])) and h.history["loss"][-1] < h.history["loss"][0], h.history
        h = make_packed().fit(x, packed, epochs=3, batch_size=96, verbose=0)
        assert np.all(np.isfinite(h.history["loss"])) and h.history["loss"][-1] < h.history["loss"][0], h.history

    # ---- set_params from a user's own callback reaches the compiled step, on every backend:
    # with a learning rate of 0 each epoch's loss shows the scale the callback set.
    scaled = lossdsl.keras.Loss("pred logits: float[B, C]\ntarget y: float[B, C]\nparam scale: float = 1.0\n"
                                "loss = scale * -sum(y * log_softmax(logits), axis=C)\n", spec_name="scaled.loss")

    class Mine(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            scaled.set_params(scale=float(epoch + 1))

    frozen = dense()
    frozen.compile(optimizer=keras.optimizers.SGD(0.0), loss=scaled)
    scaled.set_params(scale=1.0)
    base_loss = float(frozen.evaluate(x, y, batch_size=96, verbose=0))
    h = frozen.fit(x, y, epochs=3, batch_size=96, verbose=0, callbacks=[Mine()])
    np.testing.assert_allclose(h.history["loss"], [base_loss, 2 * base_loss, 3 * base_loss], rtol=1e-5)

    # ...and from a batch-level callback, mid-epoch: batch b of 32 trains with scale b + 1.
    class EachBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            scaled.set_params(scale=float(batch + 1))

    ce = ce_numpy(frozen.predict(x, verbose=0).astype(np.float64), y)
    want = np.mean([(b + 1) * ce[32 * b: 32 * b + 32].mean() for b in range(3)])
    h = frozen.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0, callbacks=[EachBatch()])
    np.testing.assert_allclose(h.history["loss"], [want, want], rtol=1e-4)

    # ---- a checkpoint written mid-fit (with the params lent to the model) loads into a fresh model
    group_loss = lossdsl.keras.Loss(GROUP_CCE, y_true=["y", "group"])
    ck = dense()
    ck.compile(optimizer=keras.optimizers.Adam(0.01), loss=group_loss)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        ck.fit(x, lossdsl.keras.pack(group_loss, y=y, group=group), epochs=2, verbose=0,
               callbacks=[lossdsl.keras.UpdateParams(group_loss, lambda e, logs: {"group_w": [1.0, 1.0 + e]}),
                          keras.callbacks.ModelCheckpoint(path)])
        group_loss.track(ck)
        ck.save(os.path.join(tmp, "tracked.keras"))
        for p in (path, os.path.join(tmp, "tracked.keras")):
            again = keras.models.load_model(p)
            np.testing.assert_allclose(again.loss.params["group_w"], [1.0, 2.0])
            np.testing.assert_allclose(again.predict(x, verbose=0), ck.predict(x, verbose=0), rtol=1e-5)
        # Weights alone (ModelCheckpoint(save_weights_only=True), save_weights) while the params
        # are lent load into a fresh model of the same layers.
        weights = os.path.join(tmp, "w.weights.h5")
        ck.fit(x, lossdsl.keras.pack(group_loss, y=y, group=group), epochs=1, verbose=0,
               callbacks=[lossdsl.keras.UpdateParams(group_loss, lambda e, logs: {"group_w": [1.0, 3.0]}),
                          keras.callbacks.ModelCheckpoint(weights, save_weights_only=True)])
        fresh = dense()
        fresh.load_weights(weights)
        np.testing.assert_allclose(fresh.predict(x, verbose=0), ck.predict(x, verbose=0), rtol=1e-5)
        # The metadata model saves and reloads too, with its loss and metrics.
        model.save(os.path.join(tmp, "meta.keras"))
        back = keras.models.load_model(os.path.join(tmp, "meta.keras"))
        np.testing.assert_allclose(back.predict(inputs, verbose=0), logits, rtol=1e-5)
        assert isinstance(back, lossdsl.keras.MetadataModel)

    # ---- docs/integrations.md's recipe: per-group weights from last epoch's validation metrics
    def from_validation(epoch, logs):
        if logs is None:
            return None
        val = [logs["val_ce_0"], logs["val_ce_1"]]
        return {"group_w": [v / sum(val) * 2 for v in val]}

    h = model.fit(inputs, y, epochs=3, batch_size=32, verbose=0, validation_data=(inputs, y),
                  callbacks=[lossdsl.keras.UpdateParams(loss, from_validation)])
    val = np.array([h.history["val_ce_0"][1], h.history["val_ce_1"][1]])  # what epoch 3 trained with
    np.testing.assert_allclose(loss.params["group_w"], val / val.sum() * 2, rtol=1e-5)
    logits = model.predict(inputs, verbose=0)
    ce = ce_numpy(logits.astype(np.float64), y)
    w = np.array(loss.params["group_w"], np.float64)
    np.testing.assert_allclose(model.evaluate(inputs, y, batch_size=96, verbose=0, return_dict=True)["loss"],
                               np.mean(w[group] * ce), rtol=1e-4)
    print(f"keras metadata on {backend}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
