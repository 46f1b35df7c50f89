#!/usr/bin/env bash
# Build the model server image from artifacts/Dockerfile, tag it, and push it to Amazon ECR.
# Creates the ECR repository when it is missing and logs Docker in with `aws ecr get-login-password`.
# Run with --help for the options; every option also reads an environment variable.
set -euo pipefail

SCRIPT_PATH="${BASH_SOURCE[0]}"
[[ "${SCRIPT_PATH}" == */* ]] || SCRIPT_PATH="./${SCRIPT_PATH}"
SCRIPT_DIR="$(cd "${SCRIPT_PATH%/*}" && pwd)"  # the build context: artifacts/
PROG="${SCRIPT_PATH##*/}"

usage() {
    cat <<EOF
Usage: ${PROG} [options]

Build the model server image (artifacts/Dockerfile), then tag and push it to
<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>. The repository is created
(scan on push, AES256 encryption) when it does not exist yet.

Options (flag > environment variable > default):
  -r, --region REGION        AWS region                 env AWS_REGION, then AWS_DEFAULT_REGION
  -a, --account ACCOUNT      12-digit AWS account ID    env AWS_ACCOUNT
  -s, --stack STACK          stack name                 env STACK            default: plmscw
      --repository NAME      ECR repository             env ECR_REPOSITORY   default: <stack>-inference
  -t, --tag TAG              image tag                  env IMAGE_TAG        default: latest
      --platform PLATFORM    docker build platform      env DOCKER_PLATFORM  default: linux/amd64
      --dry-run              print the commands instead of running them (needs neither aws nor docker)
  -h, --help                 show this help and exit

The default repository and tag match the image that utils/package-model.py registers by default
(<account>.dkr.ecr.<region>.amazonaws.com/<stack>-inference:latest).

Needs: docker (with a running engine), the AWS CLI v2, and credentials allowed to use ECR
(ecr:DescribeRepositories, ecr:CreateRepository, ecr:GetAuthorizationToken, ecr:*Layer*,
ecr:PutImage). AWS_PROFILE is honoured by the AWS CLI.

Example:
  AWS_REGION=ca-central-1 AWS_ACCOUNT=123456789012 ${PROG} --tag v1.2.0

Exit codes: 0 pushed; 1 a command failed; 2 bad or missing option.
EOF
}

fail_usage() {
    echo "${PROG}: error: $1" >&2
    echo "Run '${PROG} --help' for the options." >&2
    exit 2
}

fail() {
    echo "${PROG}: error: $1" >&2
    exit 1
}

need_value() {
    # $1 flag, $2 number of remaining arguments (including the flag), $3 the value
    if [[ "$2" -lt 2 || -z "$3" || "$3" == -* ]]; then
        fail_usage "$1 needs a value"
    fi
}

# Prints the command; runs it unless --dry-run.
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [[ "${DRY_RUN}" != "true" ]]; then
        "$@"
    fi
}

REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
ACCOUNT="${AWS_ACCOUNT:-}"
STACK="${STACK:-plmscw}"
REPOSITORY="${ECR_REPOSITORY:-}"
TAG="${IMAGE_TAG:-latest}"
PLATFORM="${DOCKER_PLATFORM:-linux/amd64}"
DRY_RUN="false"

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -r|--region) need_value "$1" "$#" "${2:-}"; REGION="$2"; shift 2 ;;
        -a|--account) need_value "$1" "$#" "${2:-}"; ACCOUNT="$2"; shift 2 ;;
        -s|--stack) need_value "$1" "$#" "${2:-}"; STACK="$2"; shift 2 ;;
        --repository) need_value "$1" "$#" "${2:-}"; REPOSITORY="$2"; shift 2 ;;
        -t|--tag) need_value "$1" "$#" "${2:-}"; TAG="$2"; shift 2 ;;
        --platform) need_value "$1" "$#" "${2:-}"; PLATFORM="$2"; shift 2 ;;
        --dry-run) DRY_RUN="true"; shift ;;
        *) fail_usage "unknown option: $1" ;;
    esac
done

REPOSITORY="${REPOSITORY:-${STACK}-inference}"

# Validate everything before touching Docker or AWS, and report all problems at once.
problems=()
[[ -n "${REGION}" ]] || problems+=("no region: pass --region or set AWS_REGION")
[[ -z "${REGION}" || "${REGION}" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] \
    || problems+=("region '${REGION}' is not an AWS region name (e.g. ca-central-1)")
[[ -n "${ACCOUNT}" ]] || problems+=("no account: pass --account or set AWS_ACCOUNT (12 digits)")
[[ -z "${ACCOUNT}" || "${ACCOUNT}" =~ ^[0-9]{12}$ ]] \
    || problems+=("account '${ACCOUNT}' must be 12 digits")
[[ "${REPOSITORY}" =~ ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$ ]] \
    || problems+=("repository '${REPOSITORY}' is not a valid ECR name (lower case, digits, . _ - /)")
[[ "${TAG}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] \
    || problems+=("tag '${TAG}' is not a valid image tag")
if [[ ${#problems[@]} -gt 0 ]]; then
    for problem in "${problems[@]}"; do
        echo "${PROG}: error: ${problem}" >&2
    done
    echo "Run '${PROG} --help' for the options." >&2
    exit 2
fi

if [[ "${DRY_RUN}" != "true" ]]; then
    command -v docker >/dev/null 2>&1 || fail "docker is not installed (https://docs.docker.com/get-docker/)"
    command -v aws >/dev/null 2>&1 || fail "the AWS CLI is not installed (aws --version must work)"
    docker info >/dev/null 2>&1 || fail "cannot reach the Docker engine: is it running?"
fi

REGISTRY="${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com"
IMAGE="${REGISTRY}/${REPOSITORY}:${TAG}"

echo "==> Repository ${REPOSITORY} in ${REGION}"
if [[ "${DRY_RUN}" == "true" ]]; then
    run aws ecr describe-repositories --region "${REGION}" --repository-names "${REPOSITORY}"
elif ! describe_error="$(aws ecr describe-repositories --region "${REGION}" \
        --repository-names "${REPOSITORY}" 2>&1 >/dev/null)"; then
    if [[ "${describe_error}" != *RepositoryNotFoundException* ]]; then
        fail "cannot check the repository: ${describe_error}"
    fi
    echo "    not found: creating it"
    run aws ecr create-repository --region "${REGION}" --repository-name "${REPOSITORY}" \
        --image-scanning-configuration scanOnPush=true \
        --encryption-configuration encryptionType=AES256 >/dev/null
else
    echo "    exists"
fi

echo "==> Logging Docker in to ${REGISTRY}"
if [[ "${DRY_RUN}" == "true" ]]; then
    echo "+ aws ecr get-login-password --region ${REGION} | docker login --username AWS --password-stdin ${REGISTRY}"
else
    aws ecr get-login-password --region "${REGION}" \
        | docker login --username AWS --password-stdin "${REGISTRY}"
fi

echo "==> Building ${IMAGE} (${PLATFORM})"
run docker build --platform "${PLATFORM}" --tag "${IMAGE}" "${SCRIPT_DIR}"

echo "==> Pushing ${IMAGE}"
run docker push "${IMAGE}"

echo "Done: ${IMAGE}"
echo "Package a model that uses it: python utils/package-model.py --image-uri ${IMAGE}"
