#!/usr/bin/env bash
# Build the worker's image (make image): with podman, or buildah when only that is there; Debian's
# podman, buildah, runc and mmdebstrap are installed with apt-get when neither engine is.
#   KARROT_IMAGE       the tag (default localhost/karrot-streams:dev)
#   KARROT_IMAGE_BASE  the BASE build argument (default docker.io/library/python:3.11-slim-bookworm);
#                      `mmdebstrap`: the base deploy/image/base.sh makes from Debian's mirror,
#                      for machines that reach no image registry (CI and the image test use it)
# Layers are podman's cache: a second build with unchanged sources takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${KARROT_IMAGE:-localhost/karrot-streams:dev}
base=${KARROT_IMAGE_BASE:-docker.io/library/python:3.11-slim-bookworm}
# This machine's podman settings (runc, cgroupfs, ulimits within the hard limits), unless the
# caller has its own.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/image/containers.conf}

sudo=$([[ "$(id -u)" == 0 ]] || echo sudo)
if ! command -v podman >/dev/null && ! command -v buildah >/dev/null \
  || { [[ "$base" == mmdebstrap ]] && ! command -v mmdebstrap >/dev/null; }; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    podman buildah runc mmdebstrap uidmap >/dev/null
fi

if [[ "$base" == mmdebstrap ]]; then
  base=localhost/karrot-streams-base:bookworm
  bash deploy/image/base.sh "$base"
fi

args=(--network host --build-arg "BASE=$base" --tag "$image" --file Containerfile)
# pip inside the build trusts what the host's pip trusts (a TLS-re-signing egress proxy's CA).
ca=${PIP_CERT:-$(pip3 config get global.cert 2>/dev/null || true)}
if [[ -n "$ca" && -f "$ca" ]]; then
  args+=(--volume "$ca:/run/build-ca.pem:ro" --build-arg BUILD_CA=/run/build-ca.pem)
fi
started=$(date +%s)
if command -v podman >/dev/null; then
  podman build --quiet "${args[@]}" . >/dev/null
else
  buildah bud --quiet "${args[@]}" . >/dev/null
fi
echo "image: $image on $base built in $(( $(date +%s) - started ))s"
