"""A member's rights in REDCap's terms: the one table that `content=user`, `userRole` and
`userRoleMapping` show and that the endpoint enforces.

Each right is read from what decides it in Capture — the role's permissions
(capture/studies/roles.py, read through access.permissions), the member's API rights set by a study
administrator (Membership.api_export / api_import / api_expires, enforced by access.require_api) and
the member's sites (REDCap's data access group) — so what a user is shown is what they can do:

- `data_export` (REDCap: 0 no access, 1 full data set, 2 de-identified, 3 identifier fields removed)
  is the record export's policy: 1 for a user who sees identifiers (Disclosure.for_user), 2 for
  everyone else who sees the study (identifier items left out, dates shifted per subject), never 3.
  `records.export_records` asks `data_export_level`, nothing else.
- `api_import` needs `enter_data` (the import's check) and the member's API import right.
- `record_delete` is the record service's DELETE_PERMISSION; `logging` is `view_audit` (`content=log`).

If you give the endpoint a new check, add the right it reads here.
"""

from __future__ import annotations

from capture.records.services import DELETE_PERMISSION
from capture.studies import access
from capture.studies.disclosure import Disclosure
from capture.studies.models import Membership
from capture.studies.roles import ROLES

from .project import dag_name

NO_ACCESS, FULL, DEIDENTIFIED = 0, 1, 2


def data_export_level(user, study) -> int:
    """The REDCap data export right of `user`: what `content=record` gives them."""
    if access.VIEW not in access.permissions(user, study):
        return NO_ACCESS
    return FULL if Disclosure.for_user(user, study).identified else DEIDENTIFIED


def _level(permissions: frozenset[str]) -> int:
    # Disclosure.for_user's rule on a set of permissions: identified with view_identifiers.
    if access.VIEW not in permissions:
        return NO_ACCESS
    return FULL if "view_identifiers" in permissions else DEIDENTIFIED


def rights(
    permissions: frozenset[str], instruments: list[str], *, api_export: bool, api_import: bool
) -> dict:
    """REDCap's rights keys for a holder of `permissions` (a role's, or a member's)."""

    def has(code: str) -> int:
        return int(code in permissions)

    level = _level(permissions)
    return {
        "design": 0,
        "alerts": 0,
        "user_rights": has("manage_study"),
        "data_access_groups": has("manage_study"),
        "data_export": level,
        "reports": 1,
        "stats_and_charts": 1,
        "manage_survey_participants": 0,
        "calendar": 0,
        "data_import_tool": has("import_data"),
        "data_comparison_tool": 0,
        "logging": has("view_audit"),
        "email_logging": 0,
        "file_repository": 0,
        "data_quality_create": 0,
        "data_quality_execute": has("verify_data"),
        "api_export": int(api_export),
        "api_import": int(api_import and "enter_data" in permissions),
        "api_modules": 0,
        "mobile_app": 0,
        "mobile_app_download_data": 0,
        "record_create": has("enroll_subject"),
        "record_rename": 0,
        "record_delete": has(DELETE_PERMISSION),
        "lock_records_all_forms": has("lock_records"),
        "lock_records": has("lock_records"),
        "lock_records_customization": 0,
        "forms": dict.fromkeys(instruments, 1 if "enter_data" in permissions else 2),
        "forms_export": dict.fromkeys(instruments, level),
    }


def member_sites(membership: Membership) -> list[str]:
    """The member's data access groups (their unique names, project.dag_name); none when they see
    every site."""
    if membership.all_sites:
        return []
    return sorted(dag_name(s) for s in membership.sites.all())


def user_row(membership: Membership, instruments: list[str]) -> dict:
    """One `content=user` row: the member's account, their sites and their rights as enforced."""
    user, study = membership.user, membership.study
    sites = member_sites(membership)
    row: dict[str, object] = {
        "username": user.get_username(),
        "email": user.email,
        "firstname": user.first_name,
        "lastname": user.last_name,
        "expiration": membership.api_expires.isoformat() if membership.api_expires else "",
        "data_access_group": sites[0] if len(sites) == 1 else "",
        "data_access_group_id": "",
    }
    if len(sites) == 1:
        row["data_access_group_id"] = next(s.pk for s in membership.sites.all() if s.code.lower() == sites[0])
    permissions = access.permissions(user, study)
    row.update(
        rights(permissions, instruments, api_export=membership.api_export, api_import=membership.api_import)
    )
    return row


def role_row(role_key: str, instruments: list[str]) -> dict:
    """One `content=userRole` row: a role's rights, with the API rights a new member gets."""
    role = ROLES[role_key]
    return {
        "unique_role_name": role.key,
        "role_label": role.title,
        **rights(role.permissions, instruments, api_export=True, api_import=True),
    }


def in_a_dag(user, study) -> bool:
    """True when the user sees only some sites (REDCap: assigned to a data access group)."""
    if getattr(user, "is_superuser", False):
        return False
    return Membership.objects.filter(user=user, study=study, all_sites=False).exists()
