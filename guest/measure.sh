#!/usr/bin/env bash
# Interleaved repeated reference runs (TCG timings vary a lot run to run: compare medians of
# interleaved runs only). Prints one line per run and a median/min/max table per variant.
#
#   guest/measure.sh [ROUNDS] [SPEC...]     SPEC = variant[:workload], default:
#                                           2d vhost-user vhost-user-fd gl:kmscube uefi
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rounds=${1:-3}
shift || true
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(2d vhost-user vhost-user-fd gl:kmscube uefi)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for r in $(seq "$rounds"); do
  for spec in "${specs[@]}"; do
    variant=${spec%%:*}
    args=(--quiet)
    [ "$spec" = "$variant" ] || args+=(--workload "${spec#*:}")
    out=$("$here/run-reference.sh" "$variant" "${args[@]}" 2>/dev/null | tr -d '\r') || true
    host=$(echo "$out" | grep '^RAYOS-HOST' | tail -n1)
    get() { echo "$out" | sed -n "s/^RAYOS-RESULT $1=\([0-9.]*\).*/\1/p" | tail -n1; }
    hget() { echo "$host" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
    line="$spec round=$r outcome=$(hget outcome) host_init=$(hget boot_to_init_s) host_done=$(hget boot_to_done_s)"
    line+=" guest_init=$(get init_uptime) guest_drm=$(get drm_ready_uptime) kmscube_fps=$(get kmscube_fps)"
    line+=" glmark2=$(get glmark2_score) load=$(cut -d' ' -f1 /proc/loadavg)"
    echo "$line" | tee -a "$results"
  done
done

echo "----- medians (min-max) over $rounds rounds"
for spec in "${specs[@]}"; do
  printf '%-16s' "$spec"
  for k in host_init host_done guest_init guest_drm kmscube_fps glmark2; do
    grep "^$spec round=" "$results" | sed -n "s/.* $k=\([0-9.][0-9.]*\).*/\1/p" | sort -n |
      awk -v k="$k" '{ v[NR] = $1 } END {
        if (NR == 0) exit
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf " %s=%.1f(%.1f-%.1f)", k, m, v[1], v[NR] }'
  done
  echo
done
