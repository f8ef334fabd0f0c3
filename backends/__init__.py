"""One lowering per framework behind one interface (see base.py).

    get_backend("torch") -> TorchBackend       (the framework is imported on first use)

The registry names modules, not classes, so that importing it imports no framework.
"""

from __future__ import annotations

import importlib

from .base import Backend, Printer, Unsupported

_MODULES = {
    "numpy": ("lossdsl.backends.numpy_backend", "NumpyBackend"),
    "torch": ("lossdsl.backends.torch_backend", "TorchBackend"),
    "tensorflow": ("lossdsl.backends.tensorflow_backend", "TensorflowBackend"),
    "jax": ("lossdsl.backends.jax_backend", "JaxBackend"),
}
ALIASES = {"np": "numpy", "pytorch": "torch", "tf": "tensorflow"}
NAMES = tuple(_MODULES)
_instances: dict[str, Backend] = {}


def canonical_name(name: str) -> str | None:
    key = ALIASES.get(name, name)
    return key if key in _MODULES else None


def get_backend(name: str) -> Backend:
    """The backend called `name` (or an alias), with its framework loaded."""
    key = canonical_name(name)
    if key is None:
        raise KeyError(name)
    if key not in _instances:
        module_name, cls_name = _MODULES[key]
        module = importlib.import_module(module_name)
        backend = getattr(module, cls_name)()
        backend.load()
        _instances[key] = backend
    return _instances[key]


__all__ = ["ALIASES", "NAMES", "Backend", "Printer", "Unsupported", "canonical_name", "get_backend"]
