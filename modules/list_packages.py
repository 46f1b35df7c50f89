"""Model package groups and their packages, for utils/list_model_packages.py.

Every page of every listing is read (botocore paginators), packages are shown newest first, and
an empty result is an answer, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modules.bundle_package import APPROVED, iter_packages
from utils import output


@dataclass(frozen=True)
class Listing:
    name_filter: str | None
    all_statuses: bool
    groups: list[dict[str, Any]]
    packages: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"filter": self.name_filter, "all_statuses": self.all_statuses,
                "group_count": len(self.groups), "package_count": len(self.packages),
                "groups": self.groups, "packages": self.packages}


def list_package_groups(sagemaker: Any, name_filter: str | None = None,
                        page_size: int | None = None) -> list[dict[str, Any]]:
    """Groups whose name contains `name_filter` (case-insensitive), newest first."""
    needle = (name_filter or "").casefold()
    groups = []
    config = {"PaginationConfig": {"PageSize": page_size}} if page_size else {}
    for page in sagemaker.get_paginator("list_model_package_groups").paginate(**config):
        for summary in page.get("ModelPackageGroupSummaryList", []):
            if needle in summary["ModelPackageGroupName"].casefold():
                groups.append({"name": summary["ModelPackageGroupName"],
                               "arn": summary.get("ModelPackageGroupArn"),
                               "status": summary.get("ModelPackageGroupStatus"),
                               "created": _iso(summary.get("CreationTime")),
                               "description": summary.get("ModelPackageGroupDescription", "")})
    return sorted(groups, key=lambda group: group["created"] or "", reverse=True)


def list_group_packages(sagemaker: Any, group_name: str, all_statuses: bool = False,
                        page_size: int | None = None) -> list[dict[str, Any]]:
    """A group's packages, newest first; only Approved ones unless `all_statuses`."""
    return [_package_row(summary) for summary in iter_packages(
        sagemaker, group_name, None if all_statuses else APPROVED, page_size)]


def _package_row(summary: dict[str, Any]) -> dict[str, Any]:
    return {"group": summary.get("ModelPackageGroupName"),
            "version": summary.get("ModelPackageVersion"),
            "arn": summary["ModelPackageArn"],
            "approval_status": summary.get("ModelApprovalStatus") or "PendingManualApproval",
            "status": summary.get("ModelPackageStatus"),
            "created": _iso(summary.get("CreationTime")),
            "description": summary.get("ModelPackageDescription", "")}


def list_model_packages(sagemaker: Any, name_filter: str | None = None,
                        all_statuses: bool = False, page_size: int | None = None) -> Listing:
    """Matching groups and their packages (all pages), packages newest first across groups."""
    groups = list_package_groups(sagemaker, name_filter, page_size)
    packages = [row for group in groups for row in
                list_group_packages(sagemaker, group["name"], all_statuses, page_size)]
    packages.sort(key=lambda row: (row["created"] or "", row["version"] or 0), reverse=True)
    for group in groups:
        group["package_count"] = sum(1 for row in packages if row["group"] == group["name"])
    return Listing(name_filter, all_statuses, groups, packages)


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value) if value is not None else None


def print_listing(listing: Listing) -> None:
    """Readable tables: the groups, then the packages newest first."""
    which = "all statuses" if listing.all_statuses else "Approved only"
    matching = f" matching '{listing.name_filter}'" if listing.name_filter else ""
    output.print_section(f"Model package groups{matching}")
    if not listing.groups:
        output.print_info(f"No model package groups found{matching}.")
        output.print_info("Package a model first: python utils/package-model.py")
        return
    output.print_table(["Group", "Packages", "Status", "Created"],
                       [[g["name"], g["package_count"], g["status"] or "-", g["created"] or "-"]
                        for g in listing.groups])
    output.print_section(f"Model packages ({which}, newest first)")
    if not listing.packages:
        hint = "" if listing.all_statuses else " (use --all-statuses to see pending and rejected)"
        output.print_info(f"No model packages found{hint}.")
        return
    output.print_table(["Group", "Version", "Approval", "Status", "Created", "ARN"],
                       [[p["group"], p["version"], p["approval_status"], p["status"] or "-",
                         p["created"] or "-", p["arn"]] for p in listing.packages])
    output.print_line()
    output.print_info(f"{len(listing.packages)} package(s) in {len(listing.groups)} group(s)")
