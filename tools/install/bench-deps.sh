#!/usr/bin/env bash
# Python packages for tools/bench/ppo_peer.py (`ballast bench ppo-step`): TRL 1.12, the newest release that still
# ships PPOTrainer (in trl.experimental.ppo), plus the small packages it imports. torch and transformers come from
# tools/install/python-deps.sh; this script never replaces the installed torch (CPU build): trl goes in with
# --no-deps and everything else under a constraint pinning torch to the version already installed.
set -euo pipefail

PY=${PYTHON:-python3}
TRL_SPEC="trl==1.12.*"

if "$PY" - <<'PY' 2>/dev/null; then exit 0; fi
import trl, accelerate, datasets, jinja2, packaging, tokenizers  # noqa: F401
from trl.experimental.ppo import PPOConfig, PPOTrainer  # noqa: F401
assert trl.__version__.startswith("1.12."), trl.__version__
PY

if ! "$PY" -c "import torch, transformers" 2>/dev/null; then
    bash "$(dirname "$0")/python-deps.sh"
fi

torch_before=$("$PY" -c "import torch; print(torch.__version__)")
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==${torch_before}" >"$constraints"

"$PY" -m pip install -q --no-deps "$TRL_SPEC"
# trl's own requirements (accelerate, datasets, jinja2, packaging); transformers is there already.
"$PY" -m pip install -q -c "$constraints" accelerate datasets jinja2 packaging

torch_after=$("$PY" -c "import torch; print(torch.__version__)")
if [ "$torch_before" != "$torch_after" ]; then
    echo "bench-deps.sh: torch changed from $torch_before to $torch_after" >&2
    exit 1
fi
TRL_EXPERIMENTAL_SILENCE=1 "$PY" -c "import trl; from trl.experimental.ppo import PPOTrainer; print('trl', trl.__version__, 'torch', '$torch_after')"
