#!/usr/bin/env bash
# The parity suite on a GPU: torch and JAX on CUDA against the float64 CPU references.
# Usage (on a machine with CUDA and the frameworks' CUDA builds): benches/gpu_parity.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
export LOSSDSL_TEST_DEVICE=cuda LOSSDSL_JAX_PLATFORMS=cuda
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
exec python -m pytest -q -p no:cacheprovider tests/test_examples_parity.py tests/test_std.py \
    tests/test_conventions.py tests/test_properties.py -k "not tensorflow" "$@"
