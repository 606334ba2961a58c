#!/usr/bin/env bash
# The prepared device check: on a CUDA machine, in one run (target: under 8 minutes on one H200),
#   1. build mmvit_hybrid._ext in place with CUDA against this machine's torch;
#   2. check which compiled ops have CUDA kernels (tools/misc/check_ops.py --smoke);
#   3. run the op tests (tests/test_outlook_attention*.py; torch alone suffices): fp32/fp16/bf16
#      parity against float64 by relative norm with poisoned outputs, gradcheck, opcheck, >2^31
#      elements forward and backward, a non-default stream;
#   4. time the fused op against the unfold/fold reference at VOLO-D1 stage-1 shapes (224, 512,
#      1024x2048 inputs; fp32 and bf16) with peak memory and GB/s against a copy measured here
#      (benchmarks/outlook_attention.py);
#   5. with the OpenMMLab stack and timm importable: CUDA autocast fp16/bf16 forward+backward of
#      every backbone (tests/test_amp.py -k cuda) and VOLO-D1 and the BoT attention layer
#      forward+backward under AMP against timm with identical weights
#      (benchmarks/compare_reference.py); without the stack these rows say so;
#   6. with the stack: one Mask R-CNN training step (800x1344, batch 2) and one UperNet step
#      (512x512, batch 4) of every backbone beside mmdet's/mmseg's R50 and Swin-T, under bf16 and
#      fp16 through mmengine's AmpOptimWrapper: time, peak memory, time per FLOP / Swin-T, finite
#      losses (benchmarks/gpu_train_steps.py det / seg);
#   7. SyncBN in a 1-process NCCL group (DDP + AMP, first loss against plain BN; gpu_train_steps.py
#      syncbn) and `tools/train.py --amp` on the demo config for one short epoch (40 synthetic
#      images, 10 iterations, then its validation: the real CLI path with mmcv's box ops under
#      autocast);
#   8. end with one table (benchmarks/gpu_report.py), also written to OUT/gpu_check.md; every
#      other output is packed into OUT/gpu_check_logs.tar.gz (a call brings back 8 files at most).
#
# The OpenMMLab stack comes from the GPU kit (tools/build_gpu_kit.sh; ${GPU_KIT:-work_dirs/gpu_kit},
# carried with the call): when mmcv.ops does not import, step `kit` installs its wheels with
# --no-index --no-deps into a side folder on PYTHONPATH (the machine's own torch stays), and its
# setuptools<81 only where the machine's setuptools lacks pkg_resources (mmengine's config loader).
# Every step's time limit is cut to what is left of GPU_CHECK_BUDGET seconds (default 450) so the
# call ends with its table; a step with no time left is listed as not run. GPU_CHECK_ONLY="det_amp
# train_amp ..." runs only those steps (plus tools, kit and build, which the others need): a second
# try that redoes what the first did not finish.
#
# Usage:
#   bash tools/gpu_check.sh [--out DIR]      # on the GPU machine (DIR defaults to $OUT, else
#                                            # work_dirs/gpu_check)
#   bash tools/gpu_check.sh --dry-run        # the same steps on CPU at toy sizes, no build, the
#                                            # CPU venv's stack in place of the kit, gloo for
#                                            # NCCL, CPU bf16 autocast, train.py in fp32
#                                            # (tests/test_build.py runs this)
# PYTHON selects the interpreter (default: .venv/bin/python if present, else python3).
# A machine without pytest/setuptools/ninja (the lent GPU machine has no package index) gets them
# from the wheels in ${GPU_WHEELS:-work_dirs/gpu_wheels}, prepared on a machine with an index by
#   pip download --only-binary=:all: --no-deps --platform manylinux2014_x86_64 --python-version 3.12 \
#       -d work_dirs/gpu_wheels pytest iniconfig pluggy packaging pygments "setuptools>=77,<81" ninja
# and carried along (3 MB).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
OUTDIR=${OUT:-work_dirs/gpu_check}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUTDIR=$2; shift ;;
    *) echo "usage: bash tools/gpu_check.sh [--dry-run] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
STEPS=$OUTDIR/steps.tsv
: > "$STEPS"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # torch-only machines: no editable install
log() { echo "[gpu_check] $(date +%H:%M:%S) $*"; }

BUDGET=${GPU_CHECK_BUDGET:-450}
# step NAME TIMEOUT_S CMD...: run, keep the log, record status and seconds; never abort the script.
# The limit is cut to what is left of BUDGET; with under 10 s left the step is not run.
step() {
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - SECONDS))
  if [ -n "${GPU_CHECK_ONLY:-}" ] && [[ " $GPU_CHECK_ONLY tools kit build " != *" $name "* ]]; then
    skip "$name" "not in GPU_CHECK_ONLY"; return
  fi
  if [ "$left" -lt 10 ]; then skip "$name" "the ${BUDGET} s budget was spent"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "$name (limit $limit s): $*"
  local t0=$SECONDS rc
  timeout "$limit" "$@" > "$OUTDIR/$name.log" 2>&1
  rc=$?
  tail -n 25 "$OUTDIR/$name.log"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$STEPS"
  log "$name: exit $rc after $((SECONDS - t0)) s"
}
skip() {  # skip NAME REASON
  log "$1: not run: $2"
  printf '%s\tskip\t0\t%s\n' "$1" "$2" >> "$STEPS"
}

log "mode: $([ $DRY = 1 ] && echo 'dry run (CPU, toy sizes)' || echo 'GPU'), python: $PY, results: $OUTDIR"
# what this interpreter has, found in one start (every start pays for the torch import): the
# torch/GPU line on stderr, then shell assignments CUDA, MISSING, MMCV_OPS and STACK_ERR
CUDA=0 MMCV_OPS=0 MISSING=()
unset STACK_ERR
probe() {
  eval "$("$PY" - <<'EOF'
import contextlib, importlib, shlex, sys
import torch
cuda = torch.cuda.is_available()
print('[gpu_check] torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU:',
      torch.cuda.get_device_name(0) if cuda else None, file=sys.stderr)


def error(*modules):
    """'' if every module imports, else the first error's one-line message."""
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is eval'd: only the lines below
            for module in modules:
                importlib.import_module(module)
    except Exception as exc:  # a broken install raises more than ImportError
        return f'{type(exc).__name__}: {exc}'.splitlines()[0]
    return ''


print(f'CUDA={int(cuda)}')
print(f'MISSING=({shlex.join(m for m in ("pytest", "setuptools", "ninja") if error(m))})')
print(f'MMCV_OPS={int(not error("mmcv.ops"))}')
print(f'STACK_ERR={shlex.quote(error("mmvit_hybrid.models", "timm"))}')
print(f'PKG_RESOURCES={int(not error("pkg_resources"))}')
EOF
)"
}
probe
if [ $DRY = 0 ]; then
  [ "$CUDA" = 1 ] ||
    { echo "[gpu_check] no CUDA device visible; use --dry-run on CPU machines" >&2; exit 2; }
  TEST_SELECT=()
else
  # the plumbing only (pass and skip reporting): the suite runs the whole op test file itself
  TEST_SELECT=(-k "(relative_norm and cpu and B2C12) or non_default_stream or past_int32")
fi

# 0. tools the steps need
WHEELS=${GPU_WHEELS:-work_dirs/gpu_wheels}
if [ ${#MISSING[@]} -gt 0 ]; then
  if [ -d "$WHEELS" ]; then  # into a side folder: the machine's Python stays as it is
    DEPS=${TMPDIR:-/tmp}/mmvit_gpu_check_deps
    step tools 120 "$PY" -m pip install -q --no-index --find-links "$WHEELS" --target "$DEPS" "${MISSING[@]}"
    export PYTHONPATH=$PYTHONPATH:$DEPS PATH=$DEPS/bin:$PATH
  else
    log "missing ${MISSING[*]} and no wheel folder $WHEELS: the steps that need them will fail"
  fi
fi

# 0b. the OpenMMLab stack from the kit (the GPU machine has none of it)
KIT=${GPU_KIT:-work_dirs/gpu_kit}
if [ "$MMCV_OPS" = 0 ] && ls "$KIT"/*.whl > /dev/null 2>&1; then
  SITE=${TMPDIR:-/tmp}/mmvit_gpu_kit_site
  rm -rf "$SITE"
  KIT_WHEELS=("$KIT"/*.whl)
  [ "${PKG_RESOURCES:-0}" = 1 ] || KIT_WHEELS+=("$KIT"/extra/setuptools-*.whl)
  step kit 180 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target "$SITE" "${KIT_WHEELS[@]}"
  export PYTHONPATH=$PYTHONPATH:$SITE
  probe  # again, with the stack
  [ "$MMCV_OPS" = 1 ] || log "kit installed but mmcv.ops still does not import: ${STACK_ERR-}"
elif [ "$MMCV_OPS" = 0 ]; then
  log "mmcv.ops does not import and there is no kit in $KIT (tools/build_gpu_kit.sh makes it)"
fi

# 1. build
if [ $DRY = 0 ]; then
  step build 420 env FORCE_CUDA=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" setup.py build_ext --inplace
else
  # no compile in the dry run: the plan the build would follow (build_config.py) must come out
  step build 60 "$PY" mmvit_hybrid/ops/build_config.py ops
fi

# 2. which ops have CUDA kernels
ONLY=(mmvit_hybrid)
[ "$MMCV_OPS" = 1 ] && ONLY+=(mmcv)
step check_ops 120 "$PY" tools/misc/check_ops.py --only "${ONLY[@]}" --smoke

# 3. op tests (torch alone)
step op_tests 300 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_outlook_attention_op.py \
    tests/test_outlook_attention_robustness.py "${TEST_SELECT[@]}" --junitxml="$OUTDIR/op_tests.xml"

# 4. fused op vs unfold/fold
if [ $DRY = 0 ]; then
  step op_bench 300 "$PY" benchmarks/outlook_attention.py --device cuda --dtype float32 bfloat16 \
      --json "$OUTDIR/op_bench.json"
else
  step op_bench 120 "$PY" benchmarks/outlook_attention.py --device cpu --threads 1 --shapes tiny \
      --dtype float32 bfloat16 --reps 1 --json "$OUTDIR/op_bench.json"
fi

# 5. models: CUDA autocast for every backbone, VOLO-D1 / BoT attention vs timm under AMP
if [ -z "${STACK_ERR-unknown}" ]; then
  if [ $DRY = 0 ]; then
    step amp_tests 240 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_amp.py -k cuda \
        --junitxml="$OUTDIR/amp_tests.xml"
    for AMP in fp16 bf16; do
      step "models_$AMP" 300 "$PY" benchmarks/compare_reference.py --device cuda --amp "$AMP" \
          --mode fwdbwd --cases volo_d1 bot_attn --sizes 224 512 --batch 64 8 --iters 20 \
          --memory --json "$OUTDIR/models_$AMP.json"
    done
  else
    step amp_tests 120 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_amp.py \
        -k "backbone and VOLO" --junitxml="$OUTDIR/amp_tests.xml"
    step models_bf16 180 "$PY" benchmarks/compare_reference.py --device cpu --threads 1 --amp bf16 \
        --mode fwdbwd --cases volo_d1 bot_attn --sizes 32 --batch 1 --warmup 0 --iters 1 \
        --json "$OUTDIR/models_bf16.json"
  fi
else
  REASON="the OpenMMLab stack or timm is not importable here (${STACK_ERR-the probe failed})"
  skip amp_tests "$REASON"
  skip models_fp16 "$REASON"
  skip models_bf16 "$REASON"
fi

# 6.-7. training steps under AmpOptimWrapper, SyncBN in a process group, train.py --amp
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mmvit_gpu_check.XXXXXX")
if [ -z "${STACK_ERR-unknown}" ]; then
  DEMO_DATA=$WORK/demo_coco
  DEMO_OPTS=(train_cfg.max_epochs=1 train_cfg.val_interval=1 default_hooks.logger.interval=5
             train_dataloader.dataset.data_root=$DEMO_DATA/ val_dataloader.dataset.data_root=$DEMO_DATA/
             test_dataloader.dataset.data_root=$DEMO_DATA/
             val_evaluator.ann_file=$DEMO_DATA/annotations/instances_val.json
             test_evaluator.ann_file=$DEMO_DATA/annotations/instances_val.json)
  if [ $DRY = 0 ]; then
    step det_amp 240 "$PY" benchmarks/gpu_train_steps.py det --amp bf16 fp16 --json "$OUTDIR/det_amp.json"
    step seg_amp 180 "$PY" benchmarks/gpu_train_steps.py seg --amp bf16 fp16 --json "$OUTDIR/seg_amp.json"
    step syncbn 120 "$PY" benchmarks/gpu_train_steps.py syncbn --amp bf16 --json "$OUTDIR/syncbn.json"
    step demo_data 60 "$PY" tools/misc/make_demo_coco.py --out "$DEMO_DATA" --num-train 40 --num-val 8
    step train_amp 180 "$PY" tools/train.py configs/demo/mask_rcnn_dsnet_t_demo.py --amp \
        --work-dir "$WORK/demo" --cfg-options "${DEMO_OPTS[@]}"
  else
    # toy sizes; CPU bf16 autocast through the same AmpOptimWrapper, gloo for NCCL; train.py in
    # fp32 (its --amp needs CUDA: mmvit_hybrid.engine.check_amp_available)
    TOY=(--device cpu --threads 1 --amp bf16 --iters 1)
    step det_amp 120 "$PY" benchmarks/gpu_train_steps.py det "${TOY[@]}" --rows swin_t dsnet_t \
        --size 64 96 --cfg-options model.train_cfg.rpn_proposal.max_per_img=64 \
        model.train_cfg.rcnn.sampler.num=16 --json "$OUTDIR/det_amp.json"
    # (the syncbn step builds and steps this package's UperNet; here mmseg's Swin-T alone)
    step seg_amp 120 "$PY" benchmarks/gpu_train_steps.py seg "${TOY[@]}" --rows swin_t \
        --size 64 64 --batch 2 --json "$OUTDIR/seg_amp.json"
    step syncbn 120 "$PY" benchmarks/gpu_train_steps.py syncbn "${TOY[@]}" --size 64 64 --batch 2 \
        --json "$OUTDIR/syncbn.json"
    step demo_data 60 "$PY" tools/misc/make_demo_coco.py --out "$DEMO_DATA" --num-train 4 --num-val 2 \
        --img-size 64
    step train_amp 120 "$PY" tools/train.py configs/demo/mask_rcnn_dsnet_t_demo.py \
        --work-dir "$WORK/demo" --cfg-options "${DEMO_OPTS[@]}"
  fi
else
  REASON="the OpenMMLab stack or timm is not importable here (${STACK_ERR-the probe failed})"
  for name in det_amp seg_amp syncbn demo_data train_amp; do skip "$name" "$REASON"; done
fi
rm -rf "$WORK"

# 8. the table; everything else into one archive (a device call brings back 8 files at most)
"$PY" benchmarks/gpu_report.py "$OUTDIR" $([ $DRY = 1 ] && echo --dry-run) | tee "$OUTDIR/gpu_check.md"
RC=${PIPESTATUS[0]}
(cd "$OUTDIR" && find . -maxdepth 1 -type f ! -name gpu_check.md ! -name steps.tsv ! -name gpu_check_logs.tar.gz \
   -printf '%P\n' | tar czf gpu_check_logs.tar.gz --remove-files -T -)
log "whole script: ${SECONDS} s; table: $OUTDIR/gpu_check.md, logs: $OUTDIR/gpu_check_logs.tar.gz"
exit "$RC"
