#!/usr/bin/env bash
# Fails when a header or source includes from a higher layer (core <- distributed <- parallel <- models).
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
status=0
check() {  # folder, then the layers it must not include
  local dir=$1; shift
  [ -d "$root/$dir" ] || return 0
  for up in "$@"; do
    hits=$(grep -rEn "#include [<\"]meshflow/($up)(/|\.h)" "$root/$dir" --include='*.h' --include='*.cpp' \
           --include='*.cu' --include='*.cuh' 2>/dev/null)
    if [ -n "$hits" ]; then
      echo "layering violation: $dir/ includes meshflow/$up (a higher layer):"
      echo "$hits"
      status=1
    fi
  done
}
check core distributed parallel models serving launcher meshflow
check distributed parallel models serving launcher meshflow
check parallel models serving launcher meshflow
check models serving launcher
check launcher parallel models serving  # meshflow-run needs only core and distributed
check serving distributed parallel launcher meshflow  # the server: core and models only
if [ $status -eq 0 ]; then echo "layering: ok (core <- distributed <- parallel <- models <- serving)"; fi
exit $status
