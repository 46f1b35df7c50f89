"""The tool's name and version: in the user agent, package metadata and every script's --version.

A module of its own (no imports) so that `--version` answers without loading boto3.
"""

TOOL_NAME = "deploy-model"
TOOL_VERSION = "1.0.0"
