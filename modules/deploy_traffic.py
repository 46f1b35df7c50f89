"""Traffic: what an endpoint's traffic settings become on a deploy (data capture; variants).

Data capture survives updates: SageMaker keeps a DataCaptureConfig only on the endpoint config,
so a deploy that writes a new config without it silently stops capturing. `planned_capture`
decides instead: the capture asked for (`--data-capture`), none (`--no-data-capture`), or the
live config's, copied as it is.
"""

from __future__ import annotations

from typing import Any

from modules.deploy_settings import DeploySettings
from utils.errors import ValidationError

SET, KEPT, DROPPED = "set", "kept", "dropped"


def live_capture(config: dict[str, Any]) -> dict[str, Any] | None:
    """The DataCaptureConfig of an endpoint config as DescribeEndpointConfig returns it, or None
    (absent, empty, or not enabled)."""
    capture = config.get("DataCaptureConfig") or None
    if capture is None or capture.get("EnableCapture") is False:
        return None
    return dict(capture)


def planned_capture(settings: DeploySettings, live: dict[str, Any] | None, *,
                    serverless: bool) -> tuple[dict[str, Any] | None, str | None]:
    """(the DataCaptureConfig of the new config, how it was decided: SET, KEPT, DROPPED or None)."""
    if settings.data_capture is not None:
        return settings.data_capture.config(), SET
    if live is None:
        return None, None
    if settings.drop_data_capture:
        return None, DROPPED
    if serverless:
        raise ValidationError(
            f"Endpoint {settings.endpoint_name} captures data to "
            f"{live.get('DestinationS3Uri')}, and a serverless endpoint cannot",
            hint="Add --no-data-capture to deploy serverless without it, or deploy on instances.")
    return live, KEPT
