#!/usr/bin/env bash
# edgeseg on NVIDIA Jetson (TensorRT): FPS report or live camera demo.
# Usage: ./run.sh BUNDLE [demo|bench] [SOURCE] [extra edgeseg flags...]   (./run.sh -h for details)
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: ./run.sh BUNDLE [demo|bench] [SOURCE] [extra edgeseg flags...]

  demo   live demo (default mode). SOURCE: 0 | /dev/videoN | FILE | rtsp://... | synthetic (default 0)
  bench  FPS/latency report into $OUT/bench-DATE/ (report.md/.json/.png). Extra args go to
         `edgeseg bench`: more bundles to compare, --data VAL, --frames N, --warmup W

env:
  THREADS  passed as --threads (default: unset = bundle/runtime default; the GPU does inference)
  OUT      output folder for reports and recordings (default ./edgeseg-out)
  SAVE     1 = demo records to $OUT/demo-DATE.mp4 (default 0)
  EDGESEG  edgeseg command (default: edgeseg from the active environment)

The engine must exist first: edgeseg engine build BUNDLE. Power mode and clocks are only
reported here, never changed.
USAGE
}

die() { echo "run.sh: error: $*" >&2; exit 2; }
warn() { echo "run.sh: warning: $*" >&2; }
info() { echo "run.sh: $*" >&2; }
read_num() { local v; v=$(cat "$1" 2>/dev/null) || return 1; [[ $v =~ ^[0-9]+$ ]] || return 1; echo "$v"; }

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
case $1 in -h|--help) usage; exit 0 ;; esac
BUNDLE=$1; shift
MODE=${1:-demo}; [[ $# -gt 0 ]] && shift
case $MODE in demo|bench) ;; *) die "unknown mode '$MODE' (use demo or bench)" ;; esac

[[ -d $BUNDLE ]] || die "$BUNDLE: bundle folder not found"
[[ -f $BUNDLE/bundle.json ]] || die "$BUNDLE: not a bundle folder (no bundle.json)"
grep -q '"backend": *"tensorrt"' "$BUNDLE/bundle.json" \
  || warn "$BUNDLE is not a TensorRT bundle (export it with --target jetson)"

THREADS=${THREADS:-}
OUT=${OUT:-./edgeseg-out}
SAVE=${SAVE:-0}
read -r -a EDGESEG_CMD <<< "${EDGESEG:-edgeseg}"
command -v "${EDGESEG_CMD[0]}" >/dev/null 2>&1 \
  || die "'${EDGESEG_CMD[0]}' not found: activate the venv that has edgeseg or set EDGESEG=/path/to/bin/edgeseg"
[[ -f $BUNDLE/model.engine ]] \
  || die "$BUNDLE: no model.engine yet; build it on this Jetson first: ${EDGESEG_CMD[*]} engine build $BUNDLE"

jetson_state() {
  local q name id maxid g d gcur gmin gmax cdir cmin cmax pinned=1
  if [[ -r /proc/device-tree/model ]]; then info "board: $(tr -d '\0' < /proc/device-tree/model)"; fi
  if [[ -r /etc/nv_tegra_release ]]; then
    info "L4T: $(sed -n '1{s/^# *//; s/, GCID.*//; p}' /etc/nv_tegra_release)"
  fi
  if ! command -v nvpmodel >/dev/null 2>&1; then
    warn "nvpmodel not found: not a Jetson, or not JetPack's L4T; power mode unknown"
  else
    q=$(nvpmodel -q 2>/dev/null || sudo -n nvpmodel -q 2>/dev/null || true)
    if [[ -z $q ]]; then
      warn "could not query the power mode (try: sudo nvpmodel -q)"
    else
      name=$(sed -n 's/^NV Power Mode: *//p' <<< "$q" | head -n1)
      id=$(grep -E '^[0-9]+$' <<< "$q" | tail -n1 || true)
      info "power mode: ${name:-?} (id ${id:-?})"
      # The fastest mode is named MAXN* in /etc/nvpmodel.conf (MAXN_SUPER on JetPack 6.2 "Super"
      # boards); on boards whose conf has no MAXN mode, mode 0 is the fastest.
      maxid=$(grep -oE 'POWER_MODEL +ID=[0-9]+ +NAME=MAXN' /etc/nvpmodel.conf 2>/dev/null \
              | head -n1 | sed -E 's/.*ID=([0-9]+).*/\1/' || true)
      if [[ ${name:-} == MAXN* ]]; then
        :
      elif [[ -n $maxid ]]; then
        warn "not at max power mode (${name:-?}); numbers will be lower. Max: sudo nvpmodel -m $maxid (not changed by this script)"
      elif [[ ${id:-} != 0 ]]; then
        warn "not at power mode 0 (${name:-?}); numbers will be lower. Max: sudo nvpmodel -m 0 (not changed by this script)"
      fi
    fi
  fi
  # jetson_clocks pins min = max for CPU, GPU and EMC; sysfs tells without root.
  for d in /sys/class/devfreq/*; do
    case ${d##*/} in *gpu*|*ga10b*|*gv11b*) g=$d; break ;; esac
  done
  if [[ -n ${g:-} ]] && gcur=$(read_num "$g/cur_freq") && gmin=$(read_num "$g/min_freq") && gmax=$(read_num "$g/max_freq"); then
    info "GPU clock: $((gcur / 1000000)) MHz (min $((gmin / 1000000)), max $((gmax / 1000000)))"
    [[ $gmin == "$gmax" ]] || pinned=0
  else
    pinned=0
  fi
  cdir=/sys/devices/system/cpu/cpu0/cpufreq
  if cmin=$(read_num "$cdir/scaling_min_freq") && cmax=$(read_num "$cdir/scaling_max_freq"); then
    info "CPU0 clock: min $((cmin / 1000)) MHz, max $((cmax / 1000)) MHz"
    [[ $cmin == "$cmax" ]] || pinned=0
  fi
  if [[ $pinned == 1 ]]; then
    info "jetson_clocks: clocks pinned at max (looks on)"
  else
    info "jetson_clocks: off or unknown (clocks follow load; 'sudo jetson_clocks --show' to check)"
  fi
}

run_cmd() { local line; printf -v line '%q ' "$@"; info "+ ${line% }"; }

jetson_state
mkdir -p "$OUT"
threads=()
[[ -n $THREADS ]] && threads=(--threads "$THREADS")

if [[ $MODE == bench ]]; then
  report="$OUT/bench-$(date +%Y%m%d-%H%M%S)"
  cmd=("${EDGESEG_CMD[@]}" bench "$BUNDLE" ${threads[@]+"${threads[@]}"} --report "$report" "$@")
  run_cmd "${cmd[@]}"
  "${cmd[@]}"
  info "report: $report/report.md"
else
  SOURCE=0
  if [[ $# -gt 0 && $1 != -* ]]; then SOURCE=$1; shift; fi
  cmd=("${EDGESEG_CMD[@]}" demo "$BUNDLE" --source "$SOURCE" ${threads[@]+"${threads[@]}"})
  [[ $SAVE == 1 ]] && cmd+=(--save "$OUT/demo-$(date +%Y%m%d-%H%M%S).mp4")
  cmd+=("$@")
  run_cmd "${cmd[@]}"
  exec "${cmd[@]}"
fi
