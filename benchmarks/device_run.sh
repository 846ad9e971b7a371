#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (see benchmarks/README.md): versions, a few test
# files under the JAX there, the speed benchmark with --scale, a campaign timing. Every step is
# time-bounded; full outputs go to $OUT. Run from the repository root:
#   bash benchmarks/device_run.sh          (the device tool carries .whl/ with tinygp's wheel)
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
OUT=${OUT:-/tmp/device_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
python3 -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
echo "== tests"
timeout 170 python3 -m pytest -q -p no:cacheprovider tests/test_model.py tests/test_training.py \
  tests/test_evaluation.py tests/test_bo_gp.py 2>&1 | tee "$OUT/tests.txt" | tail -8
echo "== speed"
timeout 280 python3 benchmarks/speed.py --quick --skip-torch --scale \
  --scale-models "${SCALE_MODELS:-1000,10000}" --scale-epochs "${SCALE_EPOCHS:-20}" 2>&1 \
  | tee "$OUT/speed.txt" | tail -14
echo "== campaigns"
timeout 110 python3 benchmarks/campaign_speed.py --methods gp-ei,random \
  --trials "${TRIALS:-200}" 2>&1 | tee "$OUT/campaign.txt" | tail -6
