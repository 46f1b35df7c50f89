#!/usr/bin/env bash
# `make demo`: the README's whole workflow, offline, against moto's HTTP server on 127.0.0.1.
# Stops everything it started, also on failure and Ctrl-C, and never talks to real AWS.
set -euo pipefail
cd "$(dirname "$0")/.."

# Nothing from the user's shell may leak in (AWS_PROFILE, an endpoint override, NO_MONITOR=1, ...):
# run in a clean environment that holds only what a terminal needs.
if [ -z "${DEPLOY_MODEL_DEMO_CLEAN_ENV:-}" ]; then
  exec env -i DEPLOY_MODEL_DEMO_CLEAN_ENV=1 PATH="$PATH" HOME="$HOME" TERM="${TERM:-dumb}" \
    LANG="${LANG:-C.UTF-8}" TMPDIR="${TMPDIR:-/tmp}" ${NO_COLOR+NO_COLOR="$NO_COLOR"} \
    ${PYTHON+PYTHON="$PYTHON"} bash "$0" "$@"
fi

PY=${PYTHON:-.venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-model-demo.XXXXXX")
MOTO_PID=""
LOCAL_ENDPOINT=qc-demo-local
AWS_ENDPOINT_NAME=qc-demo

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [ -n "${DEPLOY_MODEL_STATE_DIR:-}" ] && [ -d "$DEPLOY_MODEL_STATE_DIR/endpoints/$LOCAL_ENDPOINT" ]; then
    "$PY" utils/delete_endpoint.py -e "$LOCAL_ENDPOINT" >/dev/null 2>&1 || true
  fi
  if [ -n "$MOTO_PID" ] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$MOTO_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$MOTO_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  if [ "$code" -ne 0 ]; then
    printf '\nDemo stopped (exit %s); everything it started has been stopped.\n' "$code" >&2
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export DEPLOY_MODEL_STATE_DIR="$WORK/state"

step "0. Start the embedded AWS (moto's HTTP server on 127.0.0.1)"
read -r MOTO_PID ENDPOINT_URL < <("$PY" demo/emulated_aws.py start --log "$WORK/moto.log")
case "$ENDPOINT_URL" in
  http://127.0.0.1:*) ;;
  *) echo "refusing to run: AWS endpoint $ENDPOINT_URL is not local" >&2; exit 2 ;;
esac
eval "$("$PY" demo/emulated_aws.py env --endpoint-url "$ENDPOINT_URL")"
echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL (moto, pid $MOTO_PID); account $AWS_ACCOUNT, region $AWS_REGION"
echo "Creating what the real stack provides: bucket, queue, execution role, ECR image"
"$PY" demo/emulated_aws.py seed --endpoint-url "$AWS_ENDPOINT_URL"

step "1. Package the model: bundle, upload, register, approve"
show "$PY" utils/package-model.py --output-file "$WORK/model_arn.txt"
MODEL_ARN=$(cat "$WORK/model_arn.txt")

step "2. Deploy it to a SageMaker real-time endpoint (emulated)"
show "$PY" deploy-model.py --model-package-arn "$MODEL_ARN" --endpoint-name "$AWS_ENDPOINT_NAME"

step "3. Serve the same package on this machine (local mode: the container's own server)"
show "$PY" deploy-model.py --model-package-arn "$MODEL_ARN" --instance-type local \
  --endpoint-name "$LOCAL_ENDPOINT"

step "4. Test the local endpoint with sample-data.json"
show "$PY" test_endpoint.py --endpoint-name "$LOCAL_ENDPOINT" --input-data sample-data.json

step "5. List the registered model packages"
show "$PY" utils/list_model_packages.py

step "6. Clean up: delete both endpoints"
show "$PY" utils/delete_endpoint.py -e "$LOCAL_ENDPOINT"
show "$PY" utils/delete_endpoint.py -e "$AWS_ENDPOINT_NAME"

step "Demo complete: packaged, deployed, served and tested a model without an AWS account."
