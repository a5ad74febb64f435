#!/usr/bin/env bash
# edgeseg on Intel CPU / iGPU / NPU (OpenVINO): FPS report or live camera demo.
# Usage: ./run.sh BUNDLE [demo|bench] [SOURCE] [extra edgeseg flags...]   (./run.sh -h for details)
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: ./run.sh BUNDLE [demo|bench] [SOURCE] [extra edgeseg flags...]

  demo   live demo (default mode). SOURCE: 0 | /dev/videoN | FILE | rtsp://... | synthetic (default 0)
  bench  FPS/latency report into $OUT/bench-DATE/ (report.md/.json/.png). Extra args go to
         `edgeseg bench`: more bundles to compare, --data VAL, --frames N, --warmup W

env:
  DEVICE   OpenVINO device: CPU (default), GPU, NPU, AUTO
  THREADS  inference threads (default: unset = OpenVINO's choice, aware of P/E cores)
  OUT      output folder for reports and recordings (default ./edgeseg-out)
  SAVE     1 = demo records to $OUT/demo-DATE.mp4 (default 0)
  EDGESEG  edgeseg command (default: edgeseg from the active environment)
USAGE
}

die() { echo "run.sh: error: $*" >&2; exit 2; }
warn() { echo "run.sh: warning: $*" >&2; }
info() { echo "run.sh: $*" >&2; }

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
case $1 in -h|--help) usage; exit 0 ;; esac
BUNDLE=$1; shift
MODE=${1:-demo}; [[ $# -gt 0 ]] && shift
case $MODE in demo|bench) ;; *) die "unknown mode '$MODE' (use demo or bench)" ;; esac

[[ -d $BUNDLE ]] || die "$BUNDLE: bundle folder not found"
[[ -f $BUNDLE/bundle.json ]] || die "$BUNDLE: not a bundle folder (no bundle.json)"
grep -q '"backend": *"openvino"' "$BUNDLE/bundle.json" \
  || warn "$BUNDLE is not an OpenVINO bundle (export it with --target intel)"

DEVICE=${DEVICE:-CPU}
THREADS=${THREADS:-}
OUT=${OUT:-./edgeseg-out}
SAVE=${SAVE:-0}
read -r -a EDGESEG_CMD <<< "${EDGESEG:-edgeseg}"
command -v "${EDGESEG_CMD[0]}" >/dev/null 2>&1 \
  || die "'${EDGESEG_CMD[0]}' not found: activate the venv that has edgeseg or set EDGESEG=/path/to/bin/edgeseg"

intel_state() {
  local cpu node
  cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n1 || true)
  [[ -n $cpu ]] && info "CPU: $cpu ($(nproc) logical CPUs)"
  info "OpenVINO device: $DEVICE"
  case ${DEVICE^^} in
    *GPU*)
      node=$(compgen -G '/dev/dri/renderD*' | head -n1 || true)
      if [[ -z $node ]]; then
        warn "no /dev/dri/renderD* node: the GPU driver is not loaded"
      elif [[ ! -r $node || ! -w $node ]]; then
        warn "no access to $node: sudo usermod -aG render $USER, then log in again"
      fi ;;
  esac
  case ${DEVICE^^} in
    *NPU*)
      node=$(compgen -G '/dev/accel/accel*' | head -n1 || true)
      if [[ -z $node ]]; then
        warn "no /dev/accel/accel* node: install the Intel NPU driver (Core Ultra only)"
      elif [[ ! -r $node || ! -w $node ]]; then
        warn "no access to $node: add this user to the group owning it (usually render)"
      fi
      grep -q '"dynamic": *true' "$BUNDLE/bundle.json" \
        && warn "$BUNDLE has dynamic input shapes; the NPU wants static ones: re-export with --static --imgsz H[,W]" ;;
  esac
  return 0
}

run_cmd() { local line; printf -v line '%q ' "$@"; info "+ ${line% }"; }

intel_state
mkdir -p "$OUT"
threads=()
[[ -n $THREADS ]] && threads=(--threads "$THREADS")

if [[ $MODE == bench ]]; then
  report="$OUT/bench-$(date +%Y%m%d-%H%M%S)"
  cmd=("${EDGESEG_CMD[@]}" bench "$BUNDLE" --device "$DEVICE" ${threads[@]+"${threads[@]}"} --report "$report" "$@")
  run_cmd "${cmd[@]}"
  "${cmd[@]}"
  info "report: $report/report.md"
else
  SOURCE=0
  if [[ $# -gt 0 && $1 != -* ]]; then SOURCE=$1; shift; fi
  cmd=("${EDGESEG_CMD[@]}" demo "$BUNDLE" --source "$SOURCE" --device "$DEVICE" ${threads[@]+"${threads[@]}"})
  [[ $SAVE == 1 ]] && cmd+=(--save "$OUT/demo-$(date +%Y%m%d-%H%M%S).mp4")
  cmd+=("$@")
  run_cmd "${cmd[@]}"
  exec "${cmd[@]}"
fi
