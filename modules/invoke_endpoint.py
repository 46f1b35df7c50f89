"""One test request to an endpoint, local or on SageMaker, checked against the inference contract.

Used by `test_endpoint.py`. The input is validated before anything is sent (JSON syntax with its
position, `data` present, equal-length rows of numbers, at most 6 MB once encoded), the answer
after (`utils.contract.validate_response`). A local endpoint (recorded in the state directory by
`deploy-model.py --instance-type local`) is invoked over HTTP on loopback; otherwise SageMaker's
`InvokeEndpoint`. Errors from the endpoint carry the container's own message.

boto3 and botocore are imported only inside the SageMaker path, so bad input is refused without
loading them.
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils import contract, local_endpoints, output
from utils.errors import AwsError, ContractError, ValidationError
from utils.files import read_bounded

CONTENT_TYPES = {"json": "application/json", "csv": "text/csv"}
ACCEPT = "application/json"
INVOKE_TIMEOUT_SECONDS = 60  # SageMaker gives a container 60 s to answer
MAX_TABLE_ROWS = 50
_RAW_PREVIEW_CHARS = 500
_CHECK_INPUT = "check the input against the model (number of features, numbers only, content type)."


@dataclass(frozen=True)
class EndpointTest:
    """What to test, resolved from flags and environment by the entry script."""

    endpoint_name: str
    input_data: str
    content_type: str
    region: str
    profile: str | None
    state_dir: Path
    verbose: bool = False
    target_variant: str | None = None  # TargetVariant: SageMaker endpoints only


@dataclass(frozen=True)
class TestRequest:
    rows: list[list[float]]
    body: bytes
    content_type: str
    source: str

    @property
    def width(self) -> int:
        return len(self.rows[0])


@dataclass
class Answer:
    body: bytes
    latency_seconds: float
    target: str  # "local" or "sagemaker"
    where: dict[str, Any] = field(default_factory=dict)


def run_endpoint_test(test: EndpointTest) -> dict:
    """Check the input, invoke the endpoint (local first), check and show the answer.

    Returns the result document for `--json`; raises a typed error for every failure.
    """
    local = local_endpoints.find_endpoint(test.state_dir, test.endpoint_name)
    request = _checked_request(test, local.feature_count if local is not None else None)
    output.print_header(f"Testing endpoint {test.endpoint_name}")
    output.print_info(f"{len(request.rows)} row(s) of {request.width} features from "
                      f"{request.source}, sent as {request.content_type} "
                      f"({len(request.body):,} bytes)")
    if local is not None and local.record:
        _refuse_target_variant_locally(test)
        output.print_info(f"Using the local endpoint at {local.url} (pid {local.pid})")
        _warn_on_width(request, local.feature_count)
        answer = invoke_local(local, request)
        where = f"local endpoint {test.endpoint_name}"
    else:
        answer = _invoke_on_sagemaker(test, request)
        where = f"SageMaker endpoint {test.endpoint_name}"
    if test.verbose:
        print_raw(answer)
    response = check_answer(answer, request, where)
    print_results(response, answer, test.verbose)
    output.print_success(f"The answer from {where} follows the inference contract")
    return {"endpoint_name": test.endpoint_name, "target": answer.target, **answer.where,
            "content_type": request.content_type, "rows": len(request.rows),
            "latency_ms": round(answer.latency_seconds * 1000, 2), "contract_ok": True,
            "response": response}


def validate_variant_name(name: str | None) -> str | None:
    """None, or a variant name as SageMaker names them (the endpoint name rule)."""
    from utils.names import is_sagemaker_name

    if name is None:
        return None
    if not is_sagemaker_name(name):
        raise ValidationError(f"Invalid --target-variant: {name!r}",
                              hint="Variant names use letters, digits and hyphens, at most 63 "
                                   "characters (the names deploy-model.py shows in its plan).")
    return name


def _refuse_target_variant_locally(test: EndpointTest) -> None:
    if test.target_variant is not None:
        raise ValidationError(
            f"--target-variant {test.target_variant}: {test.endpoint_name} is a local endpoint, "
            "which serves one model and has no variants",
            hint="Drop --target-variant, or test the SageMaker endpoint of another name.")


def _checked_request(test: EndpointTest, feature_count: int | None) -> TestRequest:
    """The request, or a ValidationError; a local endpoint's recorded feature count (no AWS
    call is made for a bad input) is part of the hint."""
    try:
        payload, source = load_input(test.input_data)
        return build_request(payload, source, test.content_type)
    except ValidationError as error:
        if feature_count:
            error.hints.append(f"Local endpoint {test.endpoint_name}: "
                               f"{contract.feature_count_hint(feature_count)}")
        raise


def _warn_on_width(request: TestRequest, feature_count: int | None) -> None:
    # Sent anyway: testing how the endpoint refuses a wrong width is a fair use of this tool.
    if feature_count and request.width != feature_count:
        output.print_warning(f"The model takes {feature_count} features per row; these rows have "
                             f"{request.width}: expect the endpoint to refuse them")


def width_hint(request: TestRequest, feature_count: int | None) -> list[str]:
    """The feature count, when the refused rows do not have it."""
    if not feature_count or request.width == feature_count:
        return []
    return [f"These rows have {request.width} features. {contract.feature_count_hint(feature_count)}"]


def _invoke_on_sagemaker(test: EndpointTest, request: TestRequest) -> Answer:
    """No local endpoint of that name: SageMaker, with clients made by utils/boto_session.py."""
    from utils.env_validation import ENV_VARS

    not_local = (f"No local endpoint named {test.endpoint_name} either "
                 f"(looked in {local_endpoints.endpoints_root(test.state_dir)})")
    problem = ENV_VARS["AWS_REGION"].check(test.region)
    if problem:
        raise ValidationError(f"Region {test.region!r} {problem}", details=[not_local])
    output.print_info(f"No local endpoint of that name: invoking SageMaker in {test.region}")
    try:
        from utils.boto_session import create_clients, get_boto_session

        runtime, sagemaker = create_clients(get_boto_session(test.region, test.profile),
                                            "sagemaker-runtime", "sagemaker")
    except AwsError as error:
        error.details.append(not_local)
        raise
    local_names = [endpoint.name for endpoint in local_endpoints.list_endpoints(test.state_dir)]
    if test.target_variant:
        output.print_info(f"Sending to variant {test.target_variant} (TargetVariant)")
    return invoke_sagemaker(runtime, test.endpoint_name, request, region=test.region,
                            local_names=local_names,
                            feature_count=lambda: endpoint_feature_count(sagemaker,
                                                                         test.endpoint_name),
                            target_variant=test.target_variant,
                            variants=lambda: endpoint_variants(sagemaker, test.endpoint_name))


# --- input ------------------------------------------------------------------------------------

def load_input(value: str) -> tuple[Any, str]:
    """The JSON document given as a file path or a JSON string, and where it came from."""
    if value.lstrip().startswith(("{", "[")):
        return contract.parse_json_text(value, "--input-data (JSON string)"), "--input-data"
    try:
        # At most the invocation limit + 1 byte: -d /dev/zero or a 200 MB file is not read whole.
        raw = read_bounded(value, contract.MAX_PAYLOAD_BYTES, "--input-data file")
    except FileNotFoundError:
        raise ValidationError(f"--input-data {value!r} is neither an existing file nor JSON",
                              hint=["Give a JSON file, e.g. --input-data sample-data.json,",
                                    "or a JSON string: --input-data '{\"data\": [[1.0, 2.0, 3.0]]}'"]
                              ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"Cannot read --input-data file {value}: {exc}") from None
    return contract.parse_json_text(text, value), value


def build_request(payload: Any, source: str, content_type: str) -> TestRequest:
    """The checked rows and the body to send, as JSON or as CSV rows."""
    rows = contract.validate_request(payload, source)
    mime = CONTENT_TYPES[content_type]
    body = _csv_body(rows) if content_type == "csv" else \
        json.dumps({"data": rows}, separators=(",", ":")).encode()
    contract.check_payload_size(body, source)
    return TestRequest(rows, body, mime, source)


def _csv_body(rows: list[list[float]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


# --- local endpoints --------------------------------------------------------------------------

def invoke_local(endpoint: local_endpoints.LocalEndpoint, request: TestRequest) -> Answer:
    """POST the request to a running local endpoint's /invocations."""
    if not endpoint.is_running():
        raise _dead_local_endpoint(endpoint)
    url = f"{endpoint.url}/invocations"
    http_request = urllib.request.Request(url, data=request.body, method="POST", headers={
        "Content-Type": request.content_type, "Accept": ACCEPT})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(http_request, timeout=INVOKE_TIMEOUT_SECONDS) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise _local_http_error(endpoint, exc, request) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AwsError(f"Could not reach local endpoint {endpoint.name} at {url}: {reason}",
                       hint=[f"See its log: {endpoint.log_path}",
                             "Redeploy it: python deploy-model.py --instance-type local ..."]) from None
    latency = time.perf_counter() - started
    return Answer(body, latency, "local", {"url": endpoint.url, "pid": endpoint.pid})


def _dead_local_endpoint(endpoint: local_endpoints.LocalEndpoint) -> AwsError:
    tail = local_endpoints.read_log_tail(endpoint.log_path, 10)
    details = [f"Recorded in {endpoint.directory}"]
    if tail:
        details += ["Last lines of its server.log:"] + [f"  | {line}" for line in tail]
    return AwsError(
        f"Local endpoint {endpoint.name} is not running (its server, pid {endpoint.pid}, is gone)",
        details=details,
        hint=["Redeploy it: python deploy-model.py --model-package-arn <arn> --instance-type local "
              f"--endpoint-name {endpoint.name}",
              f"Or remove the record: python utils/delete_endpoint.py -e {endpoint.name}"])


def _local_http_error(endpoint: local_endpoints.LocalEndpoint, exc: urllib.error.HTTPError,
                      request: TestRequest) -> AwsError:
    message = _container_message(exc.read())
    hint = ([f"The server refused the request: {_CHECK_INPUT}",
             *width_hint(request, endpoint.feature_count)] if exc.code < 500
            else [f"The server failed: see its log {endpoint.log_path}"])
    return AwsError(f"Local endpoint {endpoint.name} answered HTTP {exc.code} {exc.reason}",
                    details=[f"container message: {message}"], hint=hint)


def _container_message(body: bytes) -> str:
    """The error text a model server returned: its JSON `error`/`message`, else the raw body."""
    text = body.decode(errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:_RAW_PREVIEW_CHARS] or "(empty body)"
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if data.get(key):
                return str(data[key])
    return text[:_RAW_PREVIEW_CHARS]


# --- SageMaker --------------------------------------------------------------------------------

def invoke_sagemaker(runtime_client: Any, endpoint_name: str, request: TestRequest, *,
                     region: str, local_names: list[str],
                     feature_count: Callable[[], int | None] = lambda: None,
                     target_variant: str | None = None,
                     variants: Callable[[], list[str] | None] = lambda: None) -> Answer:
    """InvokeEndpoint (to `target_variant`, when given); a container error shows the container's
    own status and message, and the model's feature count (asked only then) when the rows do not
    have it. The answer names the variant that served it (InvokedProductionVariant)."""
    from botocore.exceptions import ClientError

    target = {"TargetVariant": target_variant} if target_variant else {}
    started = time.perf_counter()
    try:
        response = runtime_client.invoke_endpoint(
            EndpointName=endpoint_name, ContentType=request.content_type, Accept=ACCEPT,
            Body=request.body, **target)
        body = response["Body"].read()
    except ClientError as exc:
        error = (_unknown_variant(exc, endpoint_name, target_variant, variants)
                 or _sagemaker_error(exc, endpoint_name, region, local_names,
                                     lambda: width_hint(request, feature_count())))
        raise error or exc from None
    latency = time.perf_counter() - started
    invoked = response.get("InvokedProductionVariant")
    if invoked:
        output.print_info(f"Answered by variant {invoked}")
    return Answer(body, latency, "sagemaker", {"region": region, "target_variant": target_variant,
                                               "invoked_variant": invoked})


def _unknown_variant(exc: Any, endpoint_name: str, target_variant: str | None,
                     variants: Callable[[], list[str] | None]) -> AwsError | None:
    """A refused TargetVariant: the endpoint's variants, read back (AWS's wording of this error
    is not relied on, only the variant list)."""
    if not target_variant or exc.response.get("Error", {}).get("Code") != "ValidationError":
        return None
    names = variants()
    if names is None or target_variant in names:
        return None
    return AwsError(f"Endpoint {endpoint_name} has no variant {target_variant}",
                    details=[f"Its variants: {', '.join(names) or 'none'}"],
                    hint="Pass one of them to --target-variant, or drop it to let the "
                         "weights choose.")


def endpoint_variants(sagemaker: Any, endpoint_name: str) -> list[str] | None:
    """The endpoint's production variant names; None when it cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        current = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except (ClientError, BotoCoreError):
        return None
    return [v.get("VariantName", "") for v in current.get("ProductionVariants") or []]


def _sagemaker_error(exc: Any, endpoint_name: str, region: str, local_names: list[str],
                     width_hints: Callable[[], list[str]]) -> AwsError | None:
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code == "ModelError":
        model_error = _model_error(exc.response, endpoint_name, message)
        # Also for a 500: AWS's prebuilt sklearn image answers bad input with one.
        model_error.hints.extend(width_hints())
        return model_error
    if code == "ValidationError" and "not found" in message.lower():
        return endpoint_not_found(endpoint_name, region, local_names, message)
    return None


def _model_error(response: dict, endpoint_name: str, message: str) -> AwsError:
    status = response.get("OriginalStatusCode")
    original = response.get("OriginalMessage") or message
    details = [f"container status: {status}" if status else "container status: unknown",
               f"container message: {_container_message(str(original).encode())}"]
    if response.get("LogStreamArn"):
        details.append(f"log stream: {response['LogStreamArn']}")
    hint = (f"The container refused the request: {_CHECK_INPUT}"
            if isinstance(status, int) and status < 500 else
            f"See the container's logs: aws logs tail /aws/sagemaker/Endpoints/{endpoint_name}")
    return AwsError(f"Endpoint {endpoint_name} returned an error from its container",
                    details=details, hint=hint)


def endpoint_feature_count(sagemaker: Any, endpoint_name: str) -> int | None:
    """The feature count registered with the package an endpoint serves (endpoint -> config ->
    model -> package), or None when any link is missing or unreadable: it is only a hint."""
    from botocore.exceptions import BotoCoreError, ClientError

    from modules.deploy_package import registered_feature_count

    try:
        config = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
        variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        model = sagemaker.describe_model(ModelName=variants[0]["ModelName"])
        containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
        package_arn = containers[0].get("ModelPackageName")
        if not package_arn:
            return None
        package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    except (ClientError, BotoCoreError, KeyError, IndexError):
        return None
    return registered_feature_count(package.get("CustomerMetadataProperties") or {})


def endpoint_not_found(endpoint_name: str, region: str, local_names: list[str],
                       aws_message: str = "") -> AwsError:
    locals_text = ", ".join(local_names) if local_names else "none"
    details = [aws_message] if aws_message else []
    return AwsError(
        f"Endpoint {endpoint_name} not found: no local endpoint of that name, and none on "
        f"SageMaker in {region}",
        details=details,
        hint=[f"SageMaker endpoints: aws sagemaker list-endpoints --region {region} "
              "--query 'Endpoints[].EndpointName'",
              f"Local endpoints on this machine: {locals_text}",
              "Is the region right? Pass --region or set AWS_REGION.",
              "Deploy one: python deploy-model.py --model-package-arn <arn> "
              "[--instance-type local]"])


# --- the answer -------------------------------------------------------------------------------

def check_answer(answer: Answer, request: TestRequest, source: str) -> dict:
    """The decoded answer, or a ContractError saying how it breaks the contract."""
    preview = answer.body[:_RAW_PREVIEW_CHARS].decode(errors="replace")
    try:
        response = json.loads(answer.body)
    except ValueError as exc:
        raise ContractError(f"The answer from {source} is not JSON: {exc}",
                            details=[f"raw answer: {preview!r}"],
                            hint="The endpoint must answer application/json as in the README's "
                                 "contract.") from None
    try:
        contract.validate_response(response, len(request.rows), source=source)
    except ContractError as error:
        error.details.append(f"raw answer: {preview!r}")
        raise
    return response


def print_results(response: dict, answer: Answer, verbose: bool) -> None:
    rows = [(i, response["predictions"][i], f"{response['confidence_scores'][i]:.4f}",
             "[" + ", ".join(f"{p:.4f}" for p in response["probabilities"][i]) + "]")
            for i in range(len(response["predictions"]))]
    shown = rows if verbose else rows[:MAX_TABLE_ROWS]
    output.print_section("Results")
    output.print_table(["row", "prediction", "confidence", "probabilities"], shown)
    if len(shown) < len(rows):
        output.print_info(f"... {len(rows) - len(shown)} more rows (--verbose shows all)")
    output.print_info(f"Latency: {answer.latency_seconds * 1000:.1f} ms (round trip)")


def print_raw(answer: Answer) -> None:
    output.print_section("Raw response")
    text = answer.body.decode(errors="replace")
    try:
        text = json.dumps(json.loads(text), indent=2)
    except ValueError:
        pass
    for line in text.splitlines() or [""]:
        output.print_line(line)
