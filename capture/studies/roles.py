"""Roles are named bundles of the object permissions on a Study.

A role changes what a user may do; a membership's sites change which subjects
they see. If you add a role, add it to the persona tables in the tests.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    key: str
    title: str
    permissions: frozenset[str]
    all_sites: bool  # True: sees every site's subjects whatever the membership lists


_READ = {"view_study_data"}

ROLES: dict[str, Role] = {
    r.key: r
    for r in [
        Role(
            "study_admin",
            "Study administrator",
            frozenset(
                _READ
                | {
                    "enroll_subject",
                    "enter_data",
                    "view_identifiers",
                    "verify_data",
                    "lock_records",
                    "sign_records",
                    "import_data",
                    "export_deidentified",
                    "export_identified",
                    "view_audit",
                    "manage_study",
                }
            ),
            all_sites=True,
        ),
        Role(
            "pi",
            "Principal investigator",
            frozenset(
                _READ
                | {
                    "view_identifiers",
                    "sign_records",
                    "export_deidentified",
                    "export_identified",
                    "view_audit",
                }
            ),
            all_sites=True,
        ),
        Role(
            "data_manager",
            "Data manager",
            frozenset(
                _READ
                | {
                    "enroll_subject",
                    "enter_data",
                    "view_identifiers",
                    "verify_data",
                    "lock_records",
                    "import_data",
                    "export_deidentified",
                    "view_audit",
                }
            ),
            all_sites=True,
        ),
        Role(
            "coordinator",
            "Study coordinator",
            frozenset(_READ | {"enroll_subject", "enter_data", "view_identifiers"}),
            all_sites=False,
        ),
        Role(
            "statistician",
            "Statistician",
            frozenset(_READ | {"export_deidentified"}),
            all_sites=True,
        ),
        Role(
            "monitor",
            "Monitor",
            frozenset(_READ | {"verify_data", "view_audit"}),
            all_sites=True,
        ),
    ]
}

ROLE_CHOICES = [(r.key, r.title) for r in ROLES.values()]
