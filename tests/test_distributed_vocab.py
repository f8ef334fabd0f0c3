"""A language-model head with its vocabulary split across replicas (`sharded="V"`, V the first
axis of W, or the second of a W given as [D, V]; h of rank 2 or 3; docs/distributed.md): each
replica holds its rows (columns) of W and its part of b, and the value and the gradients to h and
to its own part equal the single-device loss's in float64 — torch with two
gloo processes holding unequal parts (23 and 17 of 40 classes), JAX under shard_map over four
host devices; both chunked (chunks that divide no part) and as one chunk of the local classes.
The cases are in tests/workers/dist_vocab_workers.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, needs

import lossdsl
from lossdsl import LossError
from lossdsl.ir import topological

WORKERS = ROOT / "tests" / "workers"
PARTS = [23, 17]


@pytest.mark.slow
@needs("torch")
def test_torch_split_vocabulary_over_two_processes_equals_one_device(tmp_path):
    import torch.multiprocessing as mp

    sys.path.insert(0, str(WORKERS))
    try:
        import dist_vocab_workers as w

        mp.spawn(w.torch_worker, args=(2, f"file://{tmp_path}/rendezvous", str(tmp_path), PARTS), nprocs=2, join=True)
        reference = w.single_device()
        cases = w.cases()
    finally:
        sys.path.remove(str(WORKERS))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    checked = 0
    for (name, size_name), (value, grads) in reference.items():
        preds = cases[name][2]
        for r, got in enumerate(ranks):
            what = f"{name}/{size_name} on rank {r}"
            res = got[f"{name}/{size_name}"]
            lo, hi = res["rows"]
            np.testing.assert_allclose(res["value"], value, rtol=1e-10, atol=1e-12, err_msg=f"{what}: value")
            for p in preds:
                axis = w.vocabulary_axis(p, grads[p])
                # its own rows (columns of a [D, V] W); dh whole
                want = grads[p] if axis is None else grads[p][lo:hi] if axis == 0 else grads[p][:, lo:hi]
                np.testing.assert_allclose(res["grads"][p], want, rtol=1e-9, atol=1e-12, err_msg=f"{what}: d{p}")
            checked += 1
    assert checked == 2 * len(reference) == 24
    for got in ranks:
        assert "holds 40" in got["label_out_of_range"] and "[0, 40)" in got["label_out_of_range"]


@pytest.mark.slow
@needs("jax")
def test_jax_split_vocabulary_under_shard_map_equals_one_device():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKERS), str(ROOT / "tests")])}
    env.pop("JAX_PLATFORMS", None)
    r = subprocess.run(
        [sys.executable, str(WORKERS / "dist_vocab_workers.py")],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "jax vocabulary: 12 cases OK" in r.stdout


# ---- what the sharding pass makes of a split vocabulary -------------------------------------

HEAD = "pred h: float[N, D]\npred W: float[V, D]\ntarget y: int[N]\n"


def test_a_split_vocabulary_head_is_one_kernel_marked_sharded_with_no_log_softmax_left():
    from lossdsl.pipeline import lower

    checked = lossdsl.check(HEAD + "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y))\n")
    root = lower(checked, sharded="V").root
    kernels = [n for n in topological(root) if getattr(n, "fn", None) == "kernel"]
    assert [(k.attr("kernel"), k.attr("sharded")) for k in kernels] == [("lm_head", "V")]
    assert not {getattr(n, "fn", None) for n in topological(root)} & {"log_softmax", "pick", "matmul"}


@needs("torch")
def test_the_generated_code_passes_the_collectives_and_checks_labels_against_the_global_size():
    f = lossdsl.compile(
        HEAD + "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y))\n", backend="torch", sharded="V"
    )
    assert "dist=_dist" in f.source and "_dist.total(d_V, _dev)" in f.source
    plain = lossdsl.compile(HEAD + "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y))\n", backend="torch")
    assert "_dist" not in plain.source


def test_a_split_vocabulary_read_other_than_through_its_statistics_is_refused():
    for body in (
        "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y)) + sum(softmax(h @ transpose(W), axis=V))",
        "context cw: float[V]\nloss = mean(cw[y] * -pick(log_softmax(h @ transpose(W), axis=V), y))",
    ):
        with pytest.raises(LossError) as info:
            lossdsl.compile(HEAD + body + "\n", backend="numpy", sharded="V")
        assert info.value.first.code == "E811", body


def test_a_weight_penalty_next_to_the_head_is_summed_over_the_replicas():
    from lossdsl.pipeline import lower

    checked = lossdsl.check(HEAD + "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y)) + 0.01 * sum(W * W)\n")
    fns = [getattr(n, "fn", None) for n in topological(lower(checked, sharded="V").root)]
    assert "all_sum" in fns and "kernel" in fns


@needs("tensorflow")
def test_tensorflow_refuses_a_split_vocabulary_with_a_clear_error():
    with pytest.raises(LossError) as info:
        lossdsl.compile(
            HEAD + "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y))\n", backend="tensorflow", sharded="V"
        )
    assert info.value.first.code == "E811" and "MirroredStrategy" in info.value.first.message
    assert info.value.first.span is not None and info.value.first.span.line == 4


def test_global_reductions_and_lossdsl_ir_list_the_split_heads_collectives():
    from lossdsl.printing import format_ir

    body = "let z = h @ transpose(W)\nloss = mean(-pick(log_softmax(z, axis=V), y) + 0.01 * square(logsumexp(z, axis=V)))\n"
    f = lossdsl.compile(HEAD + body, backend="numpy", sharded="V")
    (head,) = f.global_reductions
    assert head.startswith("the language-model head over `V` (lse, logp): all_max and all_sum of the logsumexp")
    assert "all_sum of the picked logit" in head and "all_sum of dh in the backward" in head
    assert head.endswith("at line 4, column 9")
    smoothing = "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y) - 0.1 * mean(log_softmax(h @ transpose(W), axis=V), axis=V))\n"
    assert (
        "all_sum of the row sums"
        in lossdsl.compile(HEAD + smoothing, backend="numpy", sharded="V").global_reductions[0]
    )
    # one device lists nothing
    assert lossdsl.compile(HEAD + body, backend="numpy").global_reductions == []
    text = format_ir(lossdsl.check(HEAD + body), sharded="V", lowered=True)
    assert "made global over `V`" in text and text.rstrip().endswith(head)
