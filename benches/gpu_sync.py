"""On a GPU: a loss whose int argument is read as an index makes no device-to-host
synchronisation per call (the index check is a device-side assertion there; lossdsl/runtime.py,
`check_index`). Run on a machine with CUDA: `python benches/gpu_sync.py`; it fails with
torch's own error if any call synchronises."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import lossdsl.std  # noqa: E402


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to prove here")
        return 1
    dev = torch.device("cuda")
    f = lossdsl.std.compile("cross_entropy", backend="torch")
    g = lossdsl.compile("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z, axis=C), k))\n",
                        backend="torch")
    z = torch.randn(4096, 1000, device=dev, requires_grad=True)
    y = torch.randint(0, 1000, (4096,), device=dev)
    for loss in (f, g):
        loss(z, y).backward()  # warm-up: caches, allocator
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call now raises
    for loss in (f, g):
        for _ in range(3):
            loss(z, y).backward()
    torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    print("no device-to-host synchronisation in 6 calls (value and gradient)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
