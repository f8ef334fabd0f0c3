"""Workers for the data-parallel tests (imported by the processes that torch spawns)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
F_IN, CLASSES = 6, 3
_BATCH_SPEC = "pred yhat: float[B, C]\nloss = {}\n"


def scenarios():
    """name -> (spec, per-sample inputs, call keywords, sizes of the two shards)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, F_IN)).astype(np.float32)
    labels = rng.integers(0, CLASSES, 8)
    masked = labels.copy()
    masked[[1, 5, 6, 7]] = -100  # with a 6/2 split, the second replica has no valid label at all
    group = np.array([0, 0, 1, 0, 0, 0, 1, 1])
    onehot = np.eye(CLASSES, dtype=np.float32)[labels]
    w = rng.uniform(0.2, 2.0, 8).astype(np.float32)
    ce = str(ROOT / "lossdsl" / "std" / "cross_entropy.loss")
    mse = str(ROOT / "lossdsl" / "std" / "mse.loss")
    grp = str(ROOT / "examples" / "group_weighted_cce.loss")
    target = rng.normal(size=(8, CLASSES)).astype(np.float32)
    return {
        "masked_ce_equal": (ce, x, {"y": masked}, {}, [4, 4]),
        "masked_ce_one_side_empty": (ce, x, {"y": masked}, {}, [6, 2]),
        "weighted_mean_unequal": (mse, x, {"y": target}, {"reduction": "weighted_mean", "sample_weight": w}, [5, 3]),
        "mean_unequal": (mse, x, {"y": target}, {}, [3, 5]),
        "group_weighted": (grp, x, {"y": onehot, "group": group}, {"group_w": np.array([1.0, 2.0], np.float32)},
                           [4, 4]),
        # Reductions over the batch that TensorFlow's ReduceOp lacks (max), and global reductions
        # that feed another one (var, std, a mean around the mean): unequal shards.
        "var_nested": (_BATCH_SPEC.format("var(yhat)"), x, {}, {}, [5, 3]),
        "std_nested": (_BATCH_SPEC.format("std(yhat)"), x, {}, {}, [3, 5]),
        "mean_around_mean": (_BATCH_SPEC.format("mean((yhat - mean(yhat))^2)"), x, {}, {}, [6, 2]),
        "logsumexp_batch": (_BATCH_SPEC.format("logsumexp(yhat)"), x, {}, {}, [5, 3]),
        "max_batch": (_BATCH_SPEC.format("max(yhat) - min(yhat)"), x, {}, {}, [2, 6]),
        # Order, accumulation and the other functions along the classes, each replica's rows its own,
        # under reductions over the batch (max of a sort: global).
        "order_along_classes": (_BATCH_SPEC.format(
            "mean(sum(topk(yhat, 2, axis=C), axis=-1) + logcumsumexp(yhat, axis=C)[:, 2]"
            " + sum(cumprod(tanh(yhat), axis=C) * float(argsort(yhat, axis=C)), axis=C)"
            " + atan2(yhat[:, 0], yhat[:, 1]) + cosh(yhat[:, 2]) + sum(diag(yhat) * eye(C), axis=(1, 2)))"
            " - max(sort(yhat, axis=C)[:, 0])"), x, {}, {}, [5, 3]),
        "group_empty_on_a_replica": (grp, x, {"y": onehot, "group": np.array([0, 0, 0, 0, 0, 1, 1, 1])},
                                     {"group_w": np.array([1.0, 2.0], np.float32)}, [5, 3]),
    }


def _model(torch):
    torch.manual_seed(0)
    return torch.nn.Linear(F_IN, CLASSES)


def _to_torch(torch, value):
    return torch.as_tensor(value) if isinstance(value, np.ndarray) else value


def single_process_step(name):
    """The reference: one SGD step on the whole batch, no sharding."""
    import torch

    import lossdsl

    spec, x, args, kwargs, _ = scenarios()[name]
    model = _model(torch)
    f = lossdsl.compile(spec, backend="torch")
    loss = f(model(torch.as_tensor(x)), **{k: _to_torch(torch, v) for k, v in args.items()},
             **{k: _to_torch(torch, v) for k, v in kwargs.items()})
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.5 * p.grad
    return float(loss), [p.detach().numpy().tolist() for p in model.parameters()]


def ddp_worker(rank: int, world: int, rendezvous: str, out_dir: str):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import lossdsl

    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world)
    done = False
    try:
        results = {}
        for name, (spec, x, args, kwargs, split) in scenarios().items():
            lo, hi = sum(split[:rank]), sum(split[:rank + 1])
            model = DistributedDataParallel(_model(torch))
            f = lossdsl.compile(spec, backend="torch", sharded="B")
            part = {k: _to_torch(torch, v[lo:hi]) for k, v in args.items()}
            kw = {k: (_to_torch(torch, v[lo:hi]) if k == "sample_weight" else _to_torch(torch, v))
                  for k, v in kwargs.items()}
            loss = f(model(torch.as_tensor(x[lo:hi])), **part, **kw)
            loss.backward()  # DDP averages the gradients of the replicas
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.5 * p.grad
            results[name] = {"loss": float(loss.detach()),
                             "params": [p.detach().numpy().tolist() for p in model.parameters()]}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))
        done = True
    finally:
        dist.destroy_process_group()
    if done:
        exit_skipping_teardown()


def exit_skipping_teardown():
    """End a spawned worker whose results are on disk without the interpreter's teardown, where
    gloo's threads can abort the process ("terminate called without an active exception") after
    the work is done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def uninitialised_error() -> str:
    import torch

    import lossdsl

    f = lossdsl.compile(ROOT / "lossdsl" / "std" / "mse.loss", backend="torch", sharded="B")
    try:
        f(torch.ones(2, 3), torch.ones(2, 3))
    except lossdsl.LossError as e:
        return str(e)
    return "no error"


if __name__ == "__main__":
    sys.exit(0)
