#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11 for the Containerfile, made with mmdebstrap from
# Debian's mirror: for machines that reach no image registry (the project's CI), where
# python:3.11-slim-bookworm cannot be pulled. Everyone else builds on that image (the default).
#   deploy/image/base.sh [image name]      (default localhost/karrot-streams-base:bookworm)
# Skipped when the image exists; KARROT_BASE_REBUILD=1 makes it again (a newer Debian point release).
set -euo pipefail
image=${1:-localhost/karrot-streams-base:bookworm}
engine=$(command -v podman || command -v buildah || true)
[[ -n "$engine" ]] || { echo "base.sh: needs podman or buildah (make image installs them)" >&2; exit 1; }

if [[ "${KARROT_BASE_REBUILD:-0}" != 1 ]] && "$engine" inspect --type image "$image" >/dev/null 2>&1; then
  echo "base.sh: $image exists (KARROT_BASE_REBUILD=1 to make it again)"
  exit 0
fi

started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# minbase: Essential packages and apt only. python3-venv for the venv (and pip, through
# ensurepip, in the build stage); ca-certificates for TLS to brokers and registries that use
# public CAs; tzdata so zoneinfo and logs agree with python:3.11-slim (which has it too).
# Docs, man pages and locales other than C are left out: nothing reads them.
mmdebstrap --variant=minbase --quiet \
  --include=python3,python3-venv,ca-certificates,tzdata \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$work/rootfs.tar"
# Import sets what a FROM needs beyond the files: the PATH and a UTF-8 locale (C.UTF-8 is in libc).
if [[ "$(basename "$engine")" == podman ]]; then
  podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/usr/bin/python3"]' \
    "$work/rootfs.tar" "$image" >/dev/null
else
  container=$(buildah from scratch)
  mnt=$(buildah mount "$container")
  tar -C "$mnt" -xf "$work/rootfs.tar"
  buildah umount "$container" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /usr/bin/python3 "$container"
  buildah commit --quiet "$container" "$image" >/dev/null
  buildah rm "$container" >/dev/null
fi
echo "base.sh: $image made in $(( $(date +%s) - started ))s"
