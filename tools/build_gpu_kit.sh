#!/usr/bin/env bash
# Builds the GPU kit: every wheel the lent GPU machine (Python 3.12, torch 2.11.0+cu130, nvcc 13.0,
# no package index, 64 MiB carried per call) needs for the OpenMMLab stack, so that
# tools/gpu_check.sh runs the whole stack there. On this CPU machine, in a throw-away
# venv OUTSIDE the repo:
#   1. Python 3.12 (PYTHON312, else python3.12 on PATH, else pyenv's newest 3.12.x, else
#      `uv python find 3.12`), torch==2.11.0 from the package index (the CUDA 13.0 build, the
#      GPU machine's torch) with setuptools<81, wheel, ninja, numpy;
#   2. the mmcv 2.1.0 wheel with its CUDA ops for sm_90 only (FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0
#      MMCV_WITH_OPS=1 MAX_JOBS=2, --no-build-isolation, nvcc from CUDA_HOME=/usr/local/cuda-13.0),
#      compiled at nice 19 in a kept source tree (a rerun after a failure only recompiles what is
#      left), its log in KIT/mmcv_build.log; debug info stripped from the .so;
#   3. the cp312 manylinux wheels of mmengine 0.10.7, mmdet 3.3.0, mmsegmentation 1.2.2,
#      mmpretrain 1.2.0, pycocotools, ftfy, regex and of every requirement (read from the wheels'
#      METADATA, recursively) that the GPU machine does not have (tools/misc/gpu_kit_closure.py),
#      plus setuptools<81 (installed there only if its own setuptools lacks pkg_resources);
#   4. a check: the kit installed with --no-index --no-deps into a scratch folder imports
#      mmcv.ops (CUDA build), mmdet.models, mmseg.models and mmpretrain.models on the venv's
#      torch 2.11.0 and torchvision 0.26.0;
#   5. the sizes: the kit, the repository's tracked files, and the sum against the 64 MiB a call
#      carries (KIT/SIZE.txt);
#   6. a copy (hard links where possible) of the kit into the repo at work_dirs/gpu_kit (ignored),
#      which the device call carries.
# The kit is cached, keyed by torch version, CUDA version and arch, in
#   ${MMVIT_HYBRID_CACHE:-$HOME/.cache/mmvit_hybrid}/gpu_kit/torch-2.11.0-cu130-sm90/wheels
# and a rerun with it complete only re-checks and re-copies (seconds).
#
# Usage:
#   bash tools/build_gpu_kit.sh               # foreground (the mmcv compile: about an hour on 2 busy cores)
#   bash tools/build_gpu_kit.sh --background  # detached; prints the log path (KIT/build_gpu_kit.log)
#   bash tools/build_gpu_kit.sh --no-copy     # build/check the cache only, do not touch work_dirs/
# Then, on a session with a lent GPU, the call in benchmarks/README.md ("GPU kit").
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
TORCH_VERSION=2.11.0
TORCHVISION_VERSION=0.26.0   # the GPU machine's; only for the import check here (not in the kit)
CUDA_VERSION=13.0
ARCH=9.0
MMCV_VERSION=2.1.0
STACK=(mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 mmpretrain==1.2.0 pycocotools ftfy regex)
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda-$CUDA_VERSION}
CACHE=${MMVIT_HYBRID_CACHE:-$HOME/.cache/mmvit_hybrid}
ROOT=$CACHE/gpu_kit
KEY=torch-$TORCH_VERSION-cu${CUDA_VERSION/./}-sm${ARCH/./}
KIT=$ROOT/$KEY
WHEELS=$KIT/wheels
EXTRA=$KIT/extra            # setuptools<81: installed on the machine only when it lacks pkg_resources
VENV=$ROOT/venv-py312   # torch is checked (and reinstalled) at every run
DEST=$REPO/work_dirs/gpu_kit
LIMIT=$((64 * 1024 * 1024))
log() { echo "[gpu_kit] $(date +%H:%M:%S) $*"; }

BACKGROUND=0 COPY=1
for arg in "$@"; do
  case "$arg" in
    --background) BACKGROUND=1 ;;
    --no-copy) COPY=0 ;;
    *) echo "usage: bash tools/build_gpu_kit.sh [--background] [--no-copy]" >&2; exit 2 ;;
  esac
done
mkdir -p "$WHEELS" "$EXTRA"
if [ $BACKGROUND = 1 ]; then
  args=(); [ $COPY = 0 ] && args+=(--no-copy)
  nohup setsid bash "$0" "${args[@]}" > "$KIT/build_gpu_kit.log" 2>&1 < /dev/null &
  echo "[gpu_kit] running in the background (pid $!); log: $KIT/build_gpu_kit.log"
  echo "[gpu_kit] the mmcv compile's own log: $KIT/mmcv_build.log"
  exit 0
fi

# 1. Python 3.12 and the throw-away venv with torch 2.11.0 (the CUDA 13.0 build)
find_python312() {
  local c
  for c in "${PYTHON312:-}" "$(command -v python3.12 || true)" \
           $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V | tail -n1) \
           "$(uv python find 3.12 2>/dev/null || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null &&
      { echo "$c"; return 0; }
  done
  return 1
}
# The machine's pip config adds a find-links folder (a torch +cpu wheel) and /etc/xdg/pip caps
# versions; ignore every pip config file and that variable for every pip call here.
PIP=(env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$VENV/bin/python" -m pip)
if ! "$VENV/bin/python" -c "import torch, ninja, wheel, numpy; assert torch.__version__ == '$TORCH_VERSION+cu${CUDA_VERSION/./}'" 2>/dev/null; then
  PY312=$(find_python312) || { echo "[gpu_kit] ERROR: no Python 3.12 found (set PYTHON312, or" \
    "'pyenv install 3.12', or 'pip install uv && uv python install 3.12')" >&2; exit 1; }
  log "venv $VENV from $PY312"
  [ -x "$VENV/bin/python" ] || "$PY312" -m venv "$VENV"
  "${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
      "setuptools>=77,<81" wheel ninja "numpy<3"
fi
"$VENV/bin/python" - "$TORCH_VERSION" "$CUDA_VERSION" <<'EOF'
import sys, torch
want, cuda = sys.argv[1:]
assert torch.__version__.split('+')[0] == want and torch.version.cuda == cuda, \
    f'[gpu_kit] need torch {want} built for CUDA {cuda}, got {torch.__version__} (CUDA {torch.version.cuda})'
print(f'[gpu_kit] venv: Python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda})')
EOF
"$CUDA_HOME/bin/nvcc" --version | grep -q "release $CUDA_VERSION" ||
  { echo "[gpu_kit] ERROR: $CUDA_HOME/bin/nvcc is not CUDA $CUDA_VERSION" >&2; exit 1; }

# 2. the mmcv wheel with CUDA ops for sm_90
BUILT=
MMCV_WHL=$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"-cp312-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$MMCV_WHL" ]; then
  SRC=$ROOT/build/mmcv-$MMCV_VERSION
  if [ ! -f "$SRC/setup.py" ]; then
    mkdir -p "$ROOT/src" "$ROOT/build"
    [ -f "$ROOT/src/mmcv-$MMCV_VERSION.tar.gz" ] ||
      "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$ROOT/src"
    tar xzf "$ROOT/src/mmcv-$MMCV_VERSION.tar.gz" -C "$ROOT/build"
  fi
  LOG=$KIT/mmcv_build.log
  BUILT=$(ls "$KIT"/build_out/mmcv-"$MMCV_VERSION"-cp312-*.whl 2>/dev/null | head -n1 || true)
fi
if [ -z "$MMCV_WHL" ] && [ -z "$BUILT" ]; then
  # /usr/local/cuda-13.0 here is nvcc and the runtime only: no cusparse.h/cublas_v2.h/cusolverDn.h,
  # which torch's ATen/cuda/CUDAContextLight.h includes (mmcv's pytorch_cuda_helper.hpp includes
  # ATen/cuda/CUDAContext.h; without them the first .cu stops with "fatal error: cusparse.h: No
  # such file or directory"). torch 2.11's own nvidia-*-cu13 wheels ship those headers in
  # site-packages/nvidia/cu13/include: CPATH puts them after the -I folders for g++ and for the
  # host compiler nvcc runs (the toolkit's own include folder still comes first).
  NV_INC=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/nvidia/cu13/include
  [ -f "$NV_INC/cusparse.h" ] || { echo "[gpu_kit] ERROR: no cusparse.h in $NV_INC" >&2; exit 1; }
  log "compiling mmcv $MMCV_VERSION with CUDA ops for sm_90 at nice 19 (MAX_JOBS=2); log: $LOG"
  T0=$SECONDS
  # setup.py bdist_wheel in the kept tree, with the venv's torch (what `pip wheel
  # --no-build-isolation` runs), not pip itself: after a failed build pip runs `setup.py clean
  # --all`, which deletes build/ and every object compiled so far; this way a rerun after a
  # failure or an interruption recompiles only what is left (ninja).
  if ! (cd "$SRC" && env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$ARCH \
        MMCV_WITH_OPS=1 MAX_JOBS=2 CUDA_HOME="$CUDA_HOME" PATH="$CUDA_HOME/bin:$PATH" CPATH="$NV_INC" \
        nice -n 19 "$VENV/bin/python" setup.py bdist_wheel -d "$KIT/build_out" >> "$LOG" 2>&1); then
    echo "[gpu_kit] ERROR: the mmcv build failed; its errors (full log: $LOG):" >&2
    grep -E -m 20 'error|Error' "$LOG" >&2 || tail -n 30 "$LOG" >&2
    exit 1
  fi
  log "mmcv compiled in $(( (SECONDS - T0) / 60 )) min"
  BUILT=$(ls "$KIT"/build_out/mmcv-"$MMCV_VERSION"-cp312-*.whl | head -n1)
fi
if [ -z "$MMCV_WHL" ]; then
  # The .so carries the host compiler's -g debug info (Python's CFLAGS); strip it (the kernels and
  # symbols stay) so the kit fits the 64 MiB a call carries. wheel unpack/pack rewrites RECORD.
  STRIP=$(mktemp -d)
  "$VENV/bin/python" -m wheel unpack -d "$STRIP" "$BUILT" > /dev/null
  find "$STRIP" -name '*.so' -exec strip --strip-debug {} +
  "$VENV/bin/python" -m wheel pack -d "$WHEELS" "$STRIP"/mmcv-"$MMCV_VERSION" > /dev/null
  rm -rf "$STRIP"
  MMCV_WHL=$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"-cp312-*.whl | head -n1)
  log "mmcv wheel: $(basename "$MMCV_WHL"), $(du -h "$BUILT" | cut -f1) built, $(du -h "$MMCV_WHL" | cut -f1) stripped"
fi

# 3. the rest of the stack and its requirements the GPU machine lacks
log "downloading the stack's wheels and their closure"
"$VENV/bin/python" tools/misc/gpu_kit_closure.py --wheels "$WHEELS" --report "$KIT/closure.txt" "${STACK[@]}"
ls "$EXTRA"/setuptools-*.whl > /dev/null 2>&1 ||
  "${PIP[@]}" download -q --no-deps --only-binary=:all: "setuptools>=77,<81" -d "$EXTRA"

# 4. the kit imports on torch 2.11 / torchvision 0.26. The venv gets the packages the GPU
# machine has that the stack imports (the kit's own requirements outside it), so a wheel
# missing from the kit fails here rather than there.
log "checking the kit: --no-index --no-deps install into a scratch folder, then the imports"
"$VENV/bin/python" -c "import torchvision, matplotlib, scipy, cv2, rich, tqdm, six, einops, yaml, PIL, regex, markdown, click" 2>/dev/null ||
  "${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" matplotlib scipy \
      opencv-python-headless rich tqdm six einops pyyaml pillow regex markdown click packaging
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
"${PIP[@]}" install -q --no-index --no-deps --no-compile --target "$SCRATCH" "$WHEELS"/*.whl
(cd "$SCRATCH" && PYTHONPATH=$SCRATCH "$VENV/bin/python" - <<'EOF')
import importlib, torch
for m in ('mmcv.ops', 'mmengine', 'mmdet.models', 'mmseg.models', 'mmpretrain.models', 'pycocotools.coco',
          'ftfy', 'regex'):
    importlib.import_module(m)
import mmcv, mmcv.ops
from mmcv.ops import get_compiling_cuda_version, get_compiler_version
cuda = get_compiling_cuda_version()
assert cuda.startswith('13.0'), f'mmcv._ext was compiled without CUDA 13.0 (says {cuda!r})'
print(f'[gpu_kit] imports OK from the kit alone: mmcv {mmcv.__version__} (_ext: CUDA {cuda}, '
      f'{get_compiler_version()}), torch {torch.__version__}')
EOF
# sm_90 only: from cuobjdump where the toolkit has it (this machine's has not), else from the
# compile log: every nvcc command's -gencode flags
if command -v cuobjdump > /dev/null || [ -x "$CUDA_HOME/bin/cuobjdump" ]; then
  ARCHS=$(PATH=$CUDA_HOME/bin:$PATH cuobjdump --list-elf "$(ls "$SCRATCH"/mmcv/_ext*.so)" | grep -o 'sm_[0-9a-z]*' | sort -u | tr '\n' ' ' || true)
  SOURCE="cuobjdump --list-elf"
else
  ARCHS=$(grep -o -- '-gencode=arch=[^ ]*' "$KIT/mmcv_build.log" | sort -u | tr '\n' ' ' || true)
  SOURCE="the -gencode flags of the $(grep -c 'bin/nvcc ' "$KIT/mmcv_build.log" || true) nvcc commands in mmcv_build.log"
fi
log "mmcv._ext: ${ARCHS:-nothing found} (${SOURCE})"
case "$ARCHS" in
  "sm_90 "|"-gencode=arch=compute_90,code=sm_90 ") ;;
  *) echo "[gpu_kit] ERROR: expected machine code for sm_90 only" >&2; exit 1 ;;
esac

# 5. sizes: the kit and the repository's tracked files against the 64 MiB that travel with a call
KIT_BYTES=$(cat "$WHEELS"/*.whl "$EXTRA"/*.whl | wc -c)
bytes_of() { xargs -0r stat -c %s -- | awk '{ s += $1 } END { print s + 0 }'; }  # links count as links
REPO_BYTES=$(git ls-files -z | bytes_of)
UNTRACKED=$(git ls-files -z --others --exclude-standard | bytes_of)
TOTAL=$((KIT_BYTES + REPO_BYTES + UNTRACKED))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
{
  echo "kit $KEY: $(ls "$WHEELS"/*.whl "$EXTRA"/*.whl | wc -l) wheels, $KIT_BYTES bytes ($(mib "$KIT_BYTES"))"
  echo "repository, tracked files: $REPO_BYTES bytes ($(mib "$REPO_BYTES")); untracked, not ignored: $UNTRACKED bytes"
  echo "together: $TOTAL bytes ($(mib "$TOTAL")) of the 64 MiB a call carries"
  (cd "$WHEELS" && ls -l *.whl ../extra/*.whl | awk '{printf "  %10d  %s\n", $5, $9}')
} | tee "$KIT/SIZE.txt"
[ "$TOTAL" -lt "$LIMIT" ] || { echo "[gpu_kit] ERROR: the kit and the repository exceed 64 MiB" >&2; exit 1; }

# 6. into the repo tree (work_dirs/ is ignored), for `carry`
if [ $COPY = 1 ]; then
  rm -rf "$DEST"
  mkdir -p "$DEST/extra"
  cp -l "$WHEELS"/*.whl "$DEST"/ 2>/dev/null || cp "$WHEELS"/*.whl "$DEST"/
  cp -l "$EXTRA"/*.whl "$DEST"/extra/ 2>/dev/null || cp "$EXTRA"/*.whl "$DEST"/extra/
  cp "$KIT/SIZE.txt" "$KIT/closure.txt" "$DEST"/
  log "kit copied to $DEST ($(du -sh "$DEST" | cut -f1)); carry it with carry=[\"work_dirs/gpu_kit\"]"
fi
log "done"
