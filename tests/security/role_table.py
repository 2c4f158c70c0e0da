"""The role × permission table, typed out by hand from the README's "Roles" table.

This is the independent answer key: tests/security/test_role_table.py checks that
capture/studies/roles.py grants exactly this, and tests/security/test_route_matrix.py takes its
expected status codes from it (persona → role → permissions here), never from
capture.studies.access, so an extra or missing grant in roles.py fails both.

Do not compute anything here from roles.py. To change what a role may do, change the README's
table, this table and roles.py together, in one commit that says why.

README, "Roles":
| role | sees | may |
|---|---|---|
| study administrator | all sites | everything, including members and identified exports |
| PI | all sites | read, identifiers, sign records, exports, audit |
| data manager | all sites | enrol, enter, verify, lock, import, de-identified export, audit |
| coordinator | own sites | enrol, enter data, identifiers |
| statistician | all sites | read, de-identified export |
| monitor | all sites | read, verify, audit |

"read" (view_study_data) is every role's: each "may" column starts from it. The data manager's
README row does not name identifiers, yet the data manager works with them (the imaging queue
matches PatientIDs; imports key sheets on an MRN crosswalk), and docs/api.md names the
statistician and the monitor as the only roles without `view_identifiers`: the table follows
docs/api.md there. The README row should say "identifiers" too.
"""

# role key -> (sees every site, permission codenames)
ROLE_TABLE: dict[str, tuple[bool, frozenset[str]]] = {
    "study_admin": (
        True,
        frozenset(
            {
                "view_study_data",
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
    ),
    "pi": (
        True,
        frozenset(
            {
                "view_study_data",
                "view_identifiers",
                "sign_records",
                "export_deidentified",
                "export_identified",
                "view_audit",
            }
        ),
    ),
    "data_manager": (
        True,
        frozenset(
            {
                "view_study_data",
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
    ),
    "coordinator": (
        False,
        frozenset({"view_study_data", "enroll_subject", "enter_data", "view_identifiers"}),
    ),
    "statistician": (
        True,
        frozenset({"view_study_data", "export_deidentified"}),
    ),
    "monitor": (
        True,
        frozenset({"view_study_data", "verify_data", "view_audit"}),
    ),
}

# Every permission a study grants (capture/studies/models.py STUDY_PERMISSIONS), typed out too.
ALL_PERMISSIONS = frozenset(
    {
        "view_study_data",
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
)


def permissions_of(role: str) -> frozenset[str]:
    return ROLE_TABLE[role][1]


def sees_all_sites(role: str) -> bool:
    return ROLE_TABLE[role][0]
