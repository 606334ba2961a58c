#!/usr/bin/env bash
# Creates .venv/ in the repo and installs the pinned OpenMMLab stack plus this package (editable).
#
# The mmcv 2.1.0 wheel (CPU ops, ~12 min to compile on 2 cores; CUDA ops too where a GPU and nvcc
# are present) is built once into
#   ${MMVIT_HYBRID_CACHE:-$HOME/.cache/mmvit_hybrid}/wheels/torch-<version>-cpu/  (or -cu<ver>-sm<archs>/)
# and reused by every later run (CPU installs also take a wheel from the older torch-<version>/).
# A second run with nothing changed only checks and re-verifies. After install,
# tools/misc/check_ops.py states which compiled ops have CUDA kernels and fails if a GPU is
# visible but they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=$REPO/.venv
CACHE=${MMVIT_HYBRID_CACHE:-$HOME/.cache/mmvit_hybrid}
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
MMCV_VERSION=2.1.0
CONSTRAINTS=$REPO/requirements/constraints.txt
log() { echo "[install] $(date +%H:%M:%S) $*"; }

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
# The machine's pip config points find-links at a folder holding torch-2.13.0+cpu, whose torchvision
# pairing is broken; ignore every pip config file and that variable for all installs here.
PIP=(env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$VENV/bin/python" -m pip)
VPY=$VENV/bin/python

have() {  # have <dist> <version>: is exactly that version installed in the venv?
  "$VPY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
PYEOF
}

# 1. build tooling. setuptools < 81 keeps pkg_resources (mmcv's setup.py, mmengine's config loader).
"$VPY" - <<'PYEOF' 2>/dev/null || { log "installing setuptools/wheel"; "${PIP[@]}" install -q "setuptools>=77,<81" wheel ninja; }
from importlib.metadata import version
import ninja, wheel  # noqa: F401
v = tuple(int(x) for x in version('setuptools').split('.')[:2])
assert (77, 0) <= v < (81, 0)
PYEOF

# 2. torch + torchvision, the regular PyPI build (the +cpu wheel in the machine's find-links breaks torchvision).
if ! have torch "$TORCH_VERSION" || ! have torchvision "$TORCHVISION_VERSION"; then
  "${PIP[@]}" uninstall -q -y torch torchvision 2>/dev/null || true
  log "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION (regular build)"
  "${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi
"$VPY" -c "import torch, torchvision; assert '+cpu' not in torch.__version__, torch.__version__; print('[install] torch', torch.__version__, 'torchvision', torchvision.__version__)"

# 3. mmcv with compiled ops, from the wheel cache. mmvit_hybrid/ops/build_config.py decides: with a
# visible GPU and a matching nvcc (or FORCE_CUDA=1) mmcv gets its CUDA ops, and the cache key names
# the CUDA build (torch-<v>-cpu, torch-<v>-cu<ver>-sm<archs>), so a CPU wheel is never reused there.
# CPU installs also find wheels cached under torch-<v>/ (the key without the build).
MMCV_PLAN=$("$VPY" mmvit_hybrid/ops/build_config.py mmcv-shell)  # fails (set -e) e.g. on FORCE_CUDA=1 without nvcc
eval "$MMCV_PLAN"
log "mmcv build: ${MMCV_CACHE_KEY} (${MMCV_REASON})"
MMCV_MARKER=$VENV/.mmcv_build_key
mmcv_current() {  # is the installed mmcv the build the plan asks for?
  have mmcv "$MMCV_VERSION" && "$VPY" -c "import mmcv.ops" 2>/dev/null || return 1
  local installed; installed=$(cat "$MMCV_MARKER" 2>/dev/null || true)
  [ "$installed" = "$MMCV_CACHE_KEY" ] && return 0
  # venvs installed before the marker existed hold the CPU wheel
  [ -z "$installed" ] && [ "$MMCV_WITH_CUDA" = 0 ]
}
if ! mmcv_current; then
  WHL=
  for KEY in "$MMCV_CACHE_KEY" "${MMCV_LEGACY_KEYS[@]}"; do
    WHL=$(ls "$CACHE/wheels/$KEY"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)
    [ -n "$WHL" ] && break
  done
  if [ -z "$WHL" ]; then
    WHEELS=$CACHE/wheels/$MMCV_CACHE_KEY
    mkdir -p "$WHEELS"
    if [ "$MMCV_WITH_CUDA" = 1 ]; then
      log "building mmcv $MMCV_VERSION with CUDA ops (${MMCV_BUILD_ENV[*]}; built once, cached in $WHEELS)"
    else
      log "building mmcv $MMCV_VERSION with ops (CPU: about 12-13 minutes on 2 cores; built once, cached in $WHEELS)"
    fi
    TMP=$(mktemp -d)
    env "${MMCV_BUILD_ENV[@]}" MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" wheel -v --no-build-isolation --no-deps \
        --no-binary mmcv "mmcv==$MMCV_VERSION" -w "$TMP" 2>&1 | grep -E --line-buffered '^\[[0-9]+/[0-9]+\]|error|Error|Successfully' || true
    WHL=$(ls "$TMP"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)
    [ -n "$WHL" ] || { echo "[install] ERROR: mmcv wheel build failed" >&2; exit 1; }
    mv "$WHL" "$WHEELS"/ && WHL=$WHEELS/$(basename "$WHL")
    rm -rf "$TMP"
  fi
  log "installing $WHL"
  "${PIP[@]}" install -q --force-reinstall --no-deps "$WHL"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "$WHL"
  echo "$MMCV_CACHE_KEY" > "$MMCV_MARKER"
fi

# 4. the rest of the stack, constrained so nothing moves torch or mmcv.
log "installing mmengine/mmdet/mmseg/mmpretrain and test tools (constrained)"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -r requirements/runtime.txt -r requirements/tests.txt \
    -r requirements/deploy.txt -r requirements/reference.txt
# paddleclas only as a source of reference models (its declared deps do not install here).
"${PIP[@]}" install -q -c "$CONSTRAINTS" --no-deps -r requirements/reference_nodeps.txt

# 5. this package, editable. MMVIT_HYBRID_WITH_OPS=0 skips compiling the custom ops.
# The marker stores a hash of setup.py, the build rules, the custom-op sources (mmvit_hybrid/ops/csrc,
# names and contents), the ops switch and what the build compiles here (CPU, or CUDA and its archs:
# build_config.py's plan, so a GPU machine rebuilds a CPU-only extension); any change reinstalls.
MARKER=$VENV/.mmvit_hybrid_installed
OPS_PLAN=$("$VPY" mmvit_hybrid/ops/build_config.py ops)
BUILD_HASH=$( { echo "ops=${MMVIT_HYBRID_WITH_OPS:-1} plan=$OPS_PLAN"; sha256sum setup.py mmvit_hybrid/ops/build_config.py;
  find mmvit_hybrid/ops/csrc -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0r sha256sum; } | sha256sum | cut -d' ' -f1)
if ! "$VPY" -c "import mmvit_hybrid" 2>/dev/null || [ "$(cat "$MARKER" 2>/dev/null)" != "$BUILD_HASH" ]; then
  log "installing mmvit_hybrid (editable; compiles the custom ops unless MMVIT_HYBRID_WITH_OPS=0)"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" --no-build-isolation --no-deps -e .
  echo "$BUILD_HASH" > "$MARKER"
fi

# 5b. `mim search mmvit_hybrid` looks for model-index.yml under site-packages/mmvit_hybrid/.mim, which a
# PEP 660 editable install does not create; link the package folder there (imports resolve to the same files).
SITE=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if [ ! -e "$SITE/mmvit_hybrid" ]; then
  ln -s "$PWD/mmvit_hybrid" "$SITE/mmvit_hybrid"
fi

# 6. verify, loudly.
"$VPY" - <<'PYEOF'
import importlib, sys
failed = []
for name in ['torch', 'torchvision', 'mmcv.ops', 'mmengine', 'mmdet.models', 'mmseg.models',
             'mmpretrain.models', 'pycocotools.coco', 'mmvit_hybrid']:
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001
        failed.append(f'{name}: {type(e).__name__}: {e}')
import os
if os.environ.get('MMVIT_HYBRID_WITH_OPS', '1') != '0':
    try:
        importlib.import_module('mmvit_hybrid._ext')
    except Exception as e:  # noqa: BLE001
        failed.append(f'mmvit_hybrid._ext (the compiled custom ops; MMVIT_HYBRID_WITH_OPS=0 skips them): '
                      f'{type(e).__name__}: {e}')
if failed:
    print('[install] FAILED imports:\n  ' + '\n  '.join(failed), file=sys.stderr)
    sys.exit(1)
import torch, mmcv, mmdet, mmseg, mmpretrain, mmengine
from mmvit_hybrid.ops import ext_available
print(f'[install] OK: torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
      f'mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}, '
      f'mmvit_hybrid ops {"compiled" if ext_available() else "reference fallback"}')
PYEOF
# which compiled ops have CUDA kernels; fails loudly if a GPU is visible and they are missing
if [ "${MMVIT_HYBRID_WITH_OPS:-1}" != 0 ]; then
  "$VPY" tools/misc/check_ops.py
fi
