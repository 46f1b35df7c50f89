"""SageMaker's naming rule and the names this tool signs its work with, defined once.

Every script and module that checks a SageMaker name, or tags what it creates, takes them from
here. Imports nothing but `re` and utils/version.py, so the cheap pre-flight checks stay cheap.
"""

from __future__ import annotations

import re

from utils.version import TOOL_NAME

__all__ = ["DEFAULT_STACK", "MAX_NAME_LENGTH", "SAGEMAKER_NAME", "TOOL_NAME", "is_sagemaker_name"]

DEFAULT_STACK = "plmscw"
MAX_NAME_LENGTH = 63

# Endpoint, endpoint config, variant and model package group names: letters, digits and hyphens,
# starting and ending with a letter or digit, at most 63 characters.
SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def is_sagemaker_name(name: str | None) -> bool:
    return bool(SAGEMAKER_NAME.fullmatch(name or ""))
