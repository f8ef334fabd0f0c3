"""The main job's second half: one seed scenario trained on every backend.

Seed 004: categorical cross-entropy averaged within each input group and summed with a
weight per group, the weights updated every epoch from the validation loss of each group
(a group that does worse gets more weight). The group ids reach the loss as an input; the
weights are a param, changed between epochs without recompiling. The same spec
(examples/group_weighted_cce.loss) trains an MLP with PyTorch, Keras on TensorFlow, and
JAX with optax.

    python scripts/train_demo.py [--epochs 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import lossdsl  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "examples" / "group_weighted_cce.loss"
CLASSES, GROUPS, FEATURES, HIDDEN = 3, 2, 8, 32


def make_data(rng: np.random.Generator, n: int):
    """Group 1 (a quarter of the data) has noisier labels: it lags unless it is weighted up."""
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    group = (rng.random(n) < 0.25).astype(np.int64)
    score = x[:, :CLASSES] + 0.3 * x[:, CLASSES:2 * CLASSES]
    noise = np.where(group[:, None] == 1, 1.2, 0.4) * rng.normal(size=(n, CLASSES))
    labels = np.argmax(score + noise, axis=1)
    x[:, -1] = group  # the model may see the group too
    return x, np.eye(CLASSES, dtype=np.float32)[labels], group


def group_losses(logits: np.ndarray, y: np.ndarray, group: np.ndarray) -> np.ndarray:
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(
        1, keepdims=True)
    ce = -(y * logp).sum(1)
    return np.array([ce[group == g].mean() if np.any(group == g) else 0.0 for g in range(GROUPS)])


def next_weights(val_losses: np.ndarray) -> np.ndarray:
    """Weights proportional to each group's validation loss, averaging 1."""
    w = val_losses / val_losses.mean()
    return w.astype(np.float32)


def report(backend: str, epoch: int, epochs: int, train: float, val: np.ndarray, w: np.ndarray) -> None:
    bar = "#" * (epoch + 1) + "." * (epochs - epoch - 1)
    print(f"  {backend:10s} [{bar}] epoch {epoch + 1}/{epochs}  train {train:.4f}  "
          f"val per group {np.array2string(val, precision=3)}  next group_w {np.array2string(w, precision=3)}",
          flush=True)


def accuracy(logits, y) -> float:
    return float(np.mean(np.argmax(logits, 1) == np.argmax(y, 1)))


def train_torch(data, epochs, seed):
    import torch

    import lossdsl.torch

    (x, y, g), (vx, vy, vg) = data
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES))
    criterion = lossdsl.torch.LossModule(SPEC)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    tx, ty, tg = torch.tensor(x), torch.tensor(y), torch.tensor(g)
    w = np.ones(GROUPS, np.float32)
    for epoch in range(epochs):
        perm = np.random.default_rng(seed + epoch).permutation(len(x))
        total = 0.0
        for i in range(0, len(x), 128):
            idx = torch.tensor(perm[i:i + 128])
            opt.zero_grad()
            loss = criterion(net(tx[idx]), ty[idx], tg[idx], group_w=torch.tensor(w))
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            val = group_losses(net(torch.tensor(vx)).numpy(), vy, vg)
        w = next_weights(val)
        report("torch", epoch, epochs, total / len(x), val, w)
    with torch.no_grad():
        logits = net(torch.tensor(vx)).numpy()
    return logits


def train_keras(data, epochs, seed):
    import keras

    import lossdsl.keras

    (x, y, g), (vx, vy, vg) = data
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(HIDDEN, activation="relu"),
                              keras.layers.Dense(CLASSES)])
    loss = lossdsl.keras.Loss(SPEC, y_true=["y", "group"])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    state = {"w": np.ones(GROUPS, np.float32)}

    def schedule(epoch, logs):
        if logs is not None:
            val = group_losses(model.predict(vx, verbose=0), vy, vg)
            state["w"] = next_weights(val)
            report("keras/tf", epoch - 1, epochs, logs["loss"], val, state["w"])
        return {"group_w": state["w"]}

    class Last(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            schedule(epochs, {"loss": self.model.history.history["loss"][-1]})

    model.fit(x, lossdsl.keras.pack(loss, y=y, group=g), epochs=epochs, batch_size=128, verbose=0, shuffle=True,
              callbacks=[lossdsl.keras.UpdateParams(loss, schedule), Last()])
    return model.predict(vx, verbose=0)


def train_jax(data, epochs, seed):
    import jax
    import jax.numpy as jnp
    import optax

    (x, y, g), (vx, vy, vg) = data
    f = lossdsl.compile(SPEC, backend="jax")
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    params = {"w1": jax.random.normal(k1, (FEATURES, HIDDEN)) * (1 / np.sqrt(FEATURES)), "b1": jnp.zeros(HIDDEN),
              "w2": jax.random.normal(k2, (HIDDEN, CLASSES)) * (1 / np.sqrt(HIDDEN)), "b2": jnp.zeros(CLASSES)}

    def net(p, xb):
        return jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    opt = optax.adam(1e-2)
    opt_state = opt.init(params)

    @jax.jit
    def step(p, s, xb, yb, gb, w):
        value, grads = jax.value_and_grad(lambda q: f(net(q, xb), yb, gb, group_w=w))(p)
        updates, s = opt.update(grads, s)
        return optax.apply_updates(p, updates), s, value

    w = np.ones(GROUPS, np.float32)
    for epoch in range(epochs):
        perm = np.random.default_rng(seed + epoch).permutation(len(x))
        total = 0.0
        for i in range(0, len(x) - 127, 128):  # whole batches: one trace for the epoch
            idx = perm[i:i + 128]
            params, opt_state, v = step(params, opt_state, x[idx], y[idx], g[idx], jnp.asarray(w))
            total += float(v) * len(idx)
        val = group_losses(np.asarray(net(params, vx)), vy, vg)
        w = next_weights(val)
        report("jax+optax", epoch, epochs, total / (len(x) // 128 * 128), val, w)
    return np.asarray(net(params, vx))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    data = (make_data(rng, 2000), make_data(rng, 600))
    print(f"training with {SPEC.name}: {lossdsl.check(SPEC).signature()}\n")
    results = []
    for name, fn in (("torch", train_torch), ("keras/tensorflow", train_keras), ("jax+optax", train_jax)):
        start = time.perf_counter()
        logits = fn(data, args.epochs, args.seed)
        seconds = time.perf_counter() - start
        val = group_losses(logits, data[1][1], data[1][2])
        w = next_weights(val)
        value = float(lossdsl.compile(SPEC, backend="numpy")(logits, data[1][1], data[1][2], group_w=w))
        results.append((name, value, val, accuracy(logits, data[1][1]), seconds))
        print()
    print(f"{'backend':18s}{'val loss (spec)':>17s}{'val CE group 0':>16s}{'group 1':>9s}{'val acc':>9s}{'time':>8s}")
    for name, value, val, acc, seconds in results:
        print(f"{name:18s}{value:17.4f}{val[0]:16.4f}{val[1]:9.4f}{acc:9.3f}{seconds:7.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
