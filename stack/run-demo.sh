#!/usr/bin/env bash
# The main job on local defaults: provision the cluster, start a worker, feed it demo traffic.
# Ctrl-C stops the worker and the traffic; the stack stays up (`make stack-down` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RATE=${KARROT_DEMO_RATE:-20}
PORT=${KARROT_WEB_PORT:-6066}

"$BIN/karrot-streams" init

traffic() {
  sleep 8
  while true; do
    "$BIN/karrot-streams" generate --count "$((RATE * 10))" --rate "$RATE" --poison 0.05 \
      --seed "$RANDOM" || sleep 2
  done
}
traffic &
TRAFFIC=$!
trap 'kill "$TRAFFIC" 2>/dev/null || true' EXIT

cat <<MSG
Worker starting on http://localhost:${PORT}. Demo traffic: ${RATE} events/s (5% poison).
Try, in another shell:
  curl -s localhost:${PORT}/api/v1/monitoring/health
  curl -s -H 'Authorization: Bearer local-dev-token' localhost:${PORT}/api/v1/categories
  curl -s localhost:${PORT}/api/v1/monitoring/dlq
MSG
"$BIN/faust" -A karrot_streams.app worker -l info
