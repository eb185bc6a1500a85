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

# One build at a time: CI starts one in the background and the image test asks again; the second
# waits for the first and then takes seconds (every layer cached).
exec 9>"${TMPDIR:-/tmp}/karrot-streams-image-$(id -u).lock"
flock 9

sudo=$([[ "$(id -u)" == 0 ]] || echo sudo)
if ! command -v podman >/dev/null && ! command -v buildah >/dev/null \
  || { [[ "$base" == mmdebstrap ]] && ! command -v mmdebstrap >/dev/null; }; then
  # The Makefile's apt-get calls take the same lock; the stack's PostgreSQL install does not, so
  # a lost race on apt's own locks is tried again.
  for attempt in 1 2 3 4 5 6; do
    if $sudo flock /tmp/karrot-streams-apt.lock sh -c 'apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
           --no-install-recommends podman buildah runc mmdebstrap uidmap >/dev/null'; then
      break
    fi
    [[ $attempt == 6 ]] && exit 1
    sleep 10
  done
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
