#!/usr/bin/env bash
# edgeseg on Raspberry Pi 4/5 (LiteRT + XNNPACK): FPS report or live camera demo.
# Usage: ./run.sh BUNDLE [demo|bench] [SOURCE] [extra edgeseg flags...]   (./run.sh -h for details)
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: ./run.sh BUNDLE [demo|bench] [SOURCE] [extra edgeseg flags...]

  demo   live demo (default mode). SOURCE: 0 | /dev/videoN | FILE | rtsp://... | synthetic (default 0)
  bench  FPS/latency report into $OUT/bench-DATE/ (report.md/.json/.png). Extra args go to
         `edgeseg bench`: more bundles to compare, --data VAL, --frames N, --warmup W

env:
  THREADS  LiteRT/XNNPACK threads (default 4 = all cores of a Pi 4/5)
  OUT      output folder for reports and recordings (default ./edgeseg-out)
  SAVE     1 = demo records to $OUT/demo-DATE.mp4 (default 0)
  EDGESEG  edgeseg command (default: edgeseg from the active environment)

CPU governor and throttling are only reported here, never changed.
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
grep -q '"backend": *"litert"' "$BUNDLE/bundle.json" \
  || warn "$BUNDLE is not a LiteRT bundle (export it with --target raspberrypi)"

THREADS=${THREADS:-4}
OUT=${OUT:-./edgeseg-out}
SAVE=${SAVE:-0}
read -r -a EDGESEG_CMD <<< "${EDGESEG:-edgeseg}"
command -v "${EDGESEG_CMD[0]}" >/dev/null 2>&1 \
  || die "'${EDGESEG_CMD[0]}' not found: activate the venv that has edgeseg or set EDGESEG=/path/to/bin/edgeseg"

pi_state() {
  local gov t v bits=()
  if [[ -r /proc/device-tree/model ]]; then info "board: $(tr -d '\0' < /proc/device-tree/model)"; fi
  [[ $(uname -m) == aarch64 ]] || warn "$(uname -m) userland: LiteRT wheels need 64-bit Raspberry Pi OS (aarch64)"
  gov=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || true)
  if [[ -n $gov && $gov != performance ]]; then
    warn "CPU governor is '$gov', not 'performance': FPS varies run to run. To set it until reboot:" \
         "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
  elif [[ -n $gov ]]; then
    info "CPU governor: $gov"
  fi
  command -v vcgencmd >/dev/null 2>&1 || return 0
  t=$(vcgencmd measure_temp 2>/dev/null | sed -n 's/^temp=//p' || true)
  [[ -n $t ]] && info "SoC temperature: $t"
  t=$(vcgencmd get_throttled 2>/dev/null | sed -n 's/^throttled=//p' || true)
  if [[ ! $t =~ ^0x[0-9a-fA-F]+$ ]]; then
    warn "vcgencmd get_throttled gave no answer (is this user in the 'video' group?)"
    return 0
  fi
  v=$((t))
  (( v == 0 )) && { info "throttling: none reported (get_throttled=$t)"; return 0; }
  (( v & 0x1 )) && bits+=("under-voltage now")
  (( v & 0x2 )) && bits+=("ARM clock capped now")
  (( v & 0x4 )) && bits+=("throttled now")
  (( v & 0x8 )) && bits+=("soft temperature limit now")
  (( v & 0x10000 )) && bits+=("under-voltage since boot")
  (( v & 0x20000 )) && bits+=("clock cap since boot")
  (( v & 0x40000 )) && bits+=("throttling since boot")
  (( v & 0x80000 )) && bits+=("soft temperature limit since boot")
  local msg
  msg=$(printf '%s, ' "${bits[@]}")
  warn "throttling reported (get_throttled=$t: ${msg%, }): check the power supply (Pi 5: 5 V/5 A, Pi 4: 5 V/3 A) and cooling"
}

run_cmd() { local line; printf -v line '%q ' "$@"; info "+ ${line% }"; }

pi_state
mkdir -p "$OUT"

if [[ $MODE == bench ]]; then
  report="$OUT/bench-$(date +%Y%m%d-%H%M%S)"
  cmd=("${EDGESEG_CMD[@]}" bench "$BUNDLE" --threads "$THREADS" --report "$report" "$@")
  run_cmd "${cmd[@]}"
  "${cmd[@]}"
  info "report: $report/report.md"
else
  SOURCE=0
  if [[ $# -gt 0 && $1 != -* ]]; then SOURCE=$1; shift; fi
  cmd=("${EDGESEG_CMD[@]}" demo "$BUNDLE" --source "$SOURCE" --threads "$THREADS")
  [[ $SAVE == 1 ]] && cmd+=(--save "$OUT/demo-$(date +%Y%m%d-%H%M%S).mp4")
  cmd+=("$@")
  run_cmd "${cmd[@]}"
  exec "${cmd[@]}"
fi
