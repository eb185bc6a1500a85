#!/usr/bin/env bash
# The chart checks' tools (helm, kubeconform, kube-score), built from the Go module proxy into
# .tools/bin: no other registry of binaries is reachable where this project is built. Each is
# skipped when .tools/bin already has it at the pinned version (the version is in the file name,
# so raising a pin below builds the new one).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${KARROT_TOOLS_DIR:-$PWD/.tools}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

# name module version: the newest of each on proxy.golang.org when pinned, except helm: v3.22.0
# is served there but not yet approved for use here, so the v3 line's release before it.
PINS=(
  "helm helm.sh/helm/v3/cmd/helm v3.21.4"
  "kubeconform github.com/yannh/kubeconform/cmd/kubeconform v0.8.0"
  "kube-score github.com/zegl/kube-score/cmd/kube-score v1.20.0"
)

mkdir -p "$TOOLS/bin" "$TOOLS/versions"
# One build at a time: CI starts this in the background and `make test` runs it again; the
# second waits for the first and finds everything built.
exec 9>"$TOOLS/.lock"
flock 9
for pin in "${PINS[@]}"; do
  read -r name module version <<<"$pin"
  stamp="$TOOLS/versions/$name-$version"
  if [[ -x "$TOOLS/bin/$name" && -e "$stamp" ]]; then
    continue
  fi
  started=$(date +%s)
  # -trimpath: no build paths in the binaries; CGO off: static, nothing of the host's C libraries.
  GOBIN="$TOOLS/bin" GOFLAGS=-trimpath CGO_ENABLED=0 "$GO" install "$module@$version"
  rm -f "$TOOLS/versions/$name-"*
  touch "$stamp"
  echo "tools: $name $version built in $(( $(date +%s) - started ))s"
done
