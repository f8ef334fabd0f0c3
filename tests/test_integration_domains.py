"""`check_domains=True` on the training integrations: a Keras loss and a torch module refuse an
argument outside its declared value domain (E814) at an eager call, and pass one inside it."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl.diagnostics import LossError

from conftest import available

SPEC = "pred p: float[B, C] in simplex\ntarget y: float[B, C] in [0, 1]\nparam t: float in (0, 1] = 0.5\n" \
       "loss = mean(-sum(y * log(p), axis=C)) * t\n"
P = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
Y = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
REF = float(np.mean(-np.sum(Y * np.log(P), axis=1)) * 0.5)


def test_torch_module_checks_domains_when_asked():
    if not available("torch"):
        pytest.skip("MISSING FRAMEWORK: torch is not installed")
    import torch

    import lossdsl.torch

    m = lossdsl.torch.LossModule(SPEC, check_domains=True)
    assert float(m(torch.tensor(P), torch.tensor(Y))) == pytest.approx(REF, rel=1e-6)
    with pytest.raises(LossError) as e:
        m(torch.tensor(P), torch.tensor(Y * 2))
    assert e.value.findings[0].code == "E814" and "target `y` holds 2" in e.value.findings[0].message
    with pytest.raises(LossError, match="param `t` holds 2"):
        m(torch.tensor(P), torch.tensor(Y), t=2.0)
    m.set_params(t=3.0)  # a buffer's value is checked at the call that reads it
    with pytest.raises(LossError, match="param `t` holds 3"):
        m(torch.tensor(P), torch.tensor(Y))
    unchecked = lossdsl.torch.LossModule(SPEC)
    assert np.isfinite(float(unchecked(torch.tensor(P), torch.tensor(Y * 2))))


def test_keras_loss_checks_domains_when_asked():
    if not available("tensorflow"):
        pytest.skip("MISSING FRAMEWORK: keras is not installed")
    import keras

    import lossdsl.keras

    loss = lossdsl.keras.Loss(SPEC, check_domains=True)
    assert float(keras.ops.convert_to_numpy(loss(Y, P))) == pytest.approx(REF, rel=1e-5)
    bad = np.array([[0.5, 0.25], [0.5, 0.5]], dtype=np.float32)  # a row summing to 0.75
    with pytest.raises(LossError) as e:
        loss(Y, bad)
    assert e.value.findings[0].code == "E814" and "pred `p`" in e.value.findings[0].message
    assert lossdsl.keras.Loss.from_config(loss.get_config()).check_domains
    assert np.isfinite(float(keras.ops.convert_to_numpy(lossdsl.keras.Loss(SPEC)(Y, bad))))
