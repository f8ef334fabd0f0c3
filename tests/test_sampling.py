"""`lossdsl run --random`, the demo and the parity suite draw inputs that fit a spec: shapes
from the declarations, index ranges from how the IR uses ints, and float values from what
the loss does with them, so that every loss the demo prints is one a user could see."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.std
from lossdsl.sampling import (
    LABEL,
    LOG_SIMPLEX,
    NORMAL,
    POSITIVE,
    PROBABILITY,
    SIGN,
    SIMPLEX,
    random_inputs,
    value_roles,
)

from conftest import EXAMPLES, spec


@pytest.mark.parametrize(
    ("src", "want"),
    [
        (EXAMPLES / "weighted_cce.loss", {"y": LABEL, "probs": SIMPLEX, "class_w": POSITIVE}),
        (EXAMPLES / "group_weighted_cce.loss", {"y": LABEL, "logits": NORMAL}),
        (EXAMPLES / "contextual_ce.loss", {"y": LABEL, "c": PROBABILITY}),
        (EXAMPLES / "spatial_importance.loss", {"logits": NORMAL, "importance": POSITIVE}),
        (spec("""
            pred   p: float[B]
            target y: float[B]
            loss = -mean(y * log(p + 1e-7) + (1 - y) * log(1 - p + 1e-7))
        """), {"y": LABEL, "p": PROBABILITY}),
        (spec("""
            pred   yhat: float[B]
            target y:    float[B]
            loss = mean((yhat - y)^2)
        """), {"yhat": NORMAL, "y": NORMAL}),
        (lossdsl.std.path("dice"), {"y": LABEL, "logits": NORMAL}),
        (lossdsl.std.path("cosine_embedding"), {"y": SIGN, "x1": NORMAL}),
        (lossdsl.std.path("hinge_embedding"), {"y": SIGN}),
    ],
)
def test_each_float_is_drawn_for_what_the_loss_does_with_it(src, want):
    roles = {name: role for (name, path), role in value_roles(lossdsl.check(src)).items() if not path}
    assert {k: roles[k] for k in want} == want


def test_labels_are_one_hot_probabilities_on_the_simplex_weights_positive(rng):
    checked = lossdsl.check(EXAMPLES / "weighted_cce.loss")
    args, context, _ = random_inputs(checked, rng, {"B": 64, "C": 5})
    y, probs = args["y"], args["probs"]
    assert set(np.unique(y)) == {0.0, 1.0} and np.all(y.sum(axis=-1) == 1.0)
    assert np.all(probs > 0) and np.allclose(probs.sum(axis=-1), 1.0)
    assert np.all(context["class_w"] >= 0.5)


def test_signs_are_minus_one_or_one_and_dice_labels_lie_in_0_1(rng):
    args, _, _ = random_inputs(lossdsl.check(lossdsl.std.path("cosine_embedding")), rng, {"B": 64})
    assert set(np.unique(args["y"])) == {-1.0, 1.0}
    args, _, _ = random_inputs(lossdsl.check(lossdsl.std.path("dice")), rng, {"B": 64})
    assert ((args["y"] >= 0.0) & (args["y"] <= 1.0)).all()  # its declared domain, soft labels included
    value = lossdsl.std.compile("dice", backend="numpy")(**args)
    assert 0 <= value <= 1


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.loss")), ids=lambda p: p.stem)
def test_every_example_gives_a_plausible_loss_on_drawn_inputs(path, rng):
    checked = lossdsl.check(path)
    args, context, params = random_inputs(checked, rng)
    value = float(lossdsl.compile(path, backend="numpy", context=context, params=params)(**args))
    assert np.isfinite(value)
    # Only a loss that is minus a similarity (a reward to maximise) may be negative.
    negated_reward = "-sum(" in path.read_text() and "sim" in path.read_text()
    assert value >= 0 or negated_reward, f"{path.name}: {value}"


@pytest.mark.parametrize("path", sorted(lossdsl.std.path(n) for n in lossdsl.std.names()), ids=lambda p: p.stem)
def test_every_std_loss_gives_a_plausible_loss_on_drawn_inputs(path, rng):
    checked = lossdsl.check(path)
    args, context, params = random_inputs(checked, rng)
    value = np.asarray(lossdsl.compile(path, backend="numpy", context=context, params=params)(**args))
    assert np.all(np.isfinite(value)) and np.all(value >= 0), f"{path.name}: {value}"


def test_a_kl_divergence_draws_distributions_and_a_hinge_draws_distances(rng):
    roles = {name: role for (name, _), role in value_roles(lossdsl.check(lossdsl.std.path("kl_div"))).items()}
    assert roles == {"p": SIMPLEX, "log_q": LOG_SIMPLEX}
    args, _, _ = random_inputs(lossdsl.check(lossdsl.std.path("kl_div")), rng, {"B": 16, "C": 5})
    np.testing.assert_allclose(np.exp(args["log_q"]).sum(-1), 1.0)
    np.testing.assert_allclose(args["p"].sum(-1), 1.0)
    args, _, _ = random_inputs(lossdsl.check(lossdsl.std.path("hinge_embedding")), rng, {"B": 64, "D": 4})
    assert np.all(args["x"] >= 0) and set(np.unique(args["y"])) == {-1.0, 1.0}


@pytest.mark.parametrize("seed", range(20))
def test_ctc_draws_lengths_an_alignment_fits_and_boxes_with_ordered_corners(seed):
    """A CTC sample fits when its labels are not the blank and its steps hold the labels plus a
    blank between each repeated pair; boxes have x1 < x2 and y1 < y2 (`lossdsl run --random`)."""
    rng = np.random.default_rng(seed)
    args, _, _ = random_inputs(lossdsl.check(lossdsl.std.path("ctc")), rng, {"B": 16, "T": 6, "C": 3, "L": 4})
    for labels, n, steps in zip(args["labels"], args["label_lengths"], args["input_lengths"]):
        used = labels[:n]
        assert 1 <= n and np.all(used != 0) and n + np.sum(used[1:] == used[:-1]) <= steps <= 6, (labels, n, steps)
    assert np.isfinite(lossdsl.std.compile("ctc", backend="numpy")(**args))
    for name in ("giou", "diou", "ciou"):
        args, _, _ = random_inputs(lossdsl.check(lossdsl.std.path(name)), rng, {"B": 32})
        for boxes in (args["boxes"], args["gt"]):
            assert np.all(boxes[:, 0] < boxes[:, 2]) and np.all(boxes[:, 1] < boxes[:, 3]), name
        value = lossdsl.std.compile(name, backend="numpy")(**args)
        assert 0 <= value <= (3 if name == "ciou" else 2), (name, value)
