#!/usr/bin/env bash
# Exercise the Confluent-compatible API of the local registry with curl and print
# every status code and body (the source of the table in stack/NOTES.md).
# Uses throw-away subjects named stackcheck-<random>-value and deletes them afterwards.
# Usage: stack/check-registry.sh [BASE_URL]   (default http://localhost:${KARROT_REGISTRY_PORT:-8081}/apis/ccompat/v7)
set -euo pipefail

BASE=${1:-http://localhost:${KARROT_REGISTRY_PORT:-8081}/apis/ccompat/v7}
CT='Content-Type: application/vnd.schemaregistry.v1+json'
SUBJ=stackcheck-$RANDOM$RANDOM-value
OTHER=${SUBJ%-value}-other-value

# JSON body {"schema": "<schema as a JSON string>"}
body() { python3 -c 'import json, sys; print(json.dumps({"schema": sys.argv[1]}))' "$1"; }

call() {
  local title=$1 method=$2 path=$3 data=${4:-}
  local -a args=(-s -w ' [HTTP %{http_code}]\n' -X "$method" -H "$CT" "$BASE$path")
  [[ -n $data ]] && args+=(-d "$data")
  printf '%-44s %s %s\n    -> ' "$title" "$method" "$path"
  curl "${args[@]}"
}

V1='{"type":"record","name":"Check","namespace":"karrot.stack","fields":[{"name":"id","type":"string"}]}'
V2_BAD='{"type":"record","name":"Check","namespace":"karrot.stack","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}'
V2_OK='{"type":"record","name":"Check","namespace":"karrot.stack","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int","default":0}]}'

echo "registry: $BASE   subject: $SUBJ"
call "global config (default)" GET /config
call "register v1" POST "/subjects/$SUBJ/versions" "$(body "$V1")"
call "register v1 again (idempotent)" POST "/subjects/$SUBJ/versions" "$(body "$V1")"
call "same schema under another subject" POST "/subjects/$OTHER/versions" "$(body "$V1")"
ID=$(curl -s -X POST -H "$CT" "$BASE/subjects/$SUBJ" -d "$(body "$V1")" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
call "schema by id ($ID)" GET "/schemas/ids/$ID"
call "unknown id" GET /schemas/ids/999999
call "lookup schema under subject" POST "/subjects/$SUBJ" "$(body "$V1")"
call "versions" GET "/subjects/$SUBJ/versions"
call "latest" GET "/subjects/$SUBJ/versions/latest"
call "subject config (unset)" GET "/config/$SUBJ"
call "set subject config BACKWARD" PUT "/config/$SUBJ" '{"compatibility":"BACKWARD"}'
call "subject config" GET "/config/$SUBJ"
call "set global config BACKWARD" PUT /config '{"compatibility":"BACKWARD"}'
call "global config" GET /config
call "compat check: new required field" POST "/compatibility/subjects/$SUBJ/versions/latest" "$(body "$V2_BAD")"
call "compat check verbose" POST "/compatibility/subjects/$SUBJ/versions/latest?verbose=true" "$(body "$V2_BAD")"
call "register incompatible" POST "/subjects/$SUBJ/versions" "$(body "$V2_BAD")"
call "compat check: field with default" POST "/compatibility/subjects/$SUBJ/versions/latest" "$(body "$V2_OK")"
call "register compatible v2" POST "/subjects/$SUBJ/versions" "$(body "$V2_OK")"
call "versions" GET "/subjects/$SUBJ/versions"
call "set subject config NONE" PUT "/config/$SUBJ" '{"compatibility":"NONE"}'
call "delete subject config" DELETE "/config/$SUBJ"
call "delete version 1" DELETE "/subjects/$SUBJ/versions/1"
call "soft-delete subject" DELETE "/subjects/$SUBJ"
call "subjects after soft delete" GET /subjects
call "hard-delete subject" DELETE "/subjects/$SUBJ?permanent=true"
call "soft-delete other" DELETE "/subjects/$OTHER"
call "hard-delete other" DELETE "/subjects/$OTHER?permanent=true"
call "unknown subject" GET /subjects/no-such-subject/versions
