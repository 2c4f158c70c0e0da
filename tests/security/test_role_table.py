"""The roles Capture grants are exactly the README's table (tests/security/role_table.py).

An extra grant (say `enter_data` for the statistician) or a missing one fails here with the
role and permission named, and fails the route matrix, whose expectations come from the same
hand-typed table rather than from the code under test.
"""

from __future__ import annotations

from capture.studies.models import STUDY_PERMISSIONS
from capture.studies.roles import ROLES
from tests.security.role_table import ALL_PERMISSIONS, ROLE_TABLE

HOW_TO_FIX = (
    "If the README's role table changed on purpose, change tests/security/role_table.py by hand "
    "in the same commit (and say why); otherwise put capture/studies/roles.py back."
)


def test_the_roles_are_the_readme_roles():
    assert set(ROLES) == set(ROLE_TABLE), (
        f"capture/studies/roles.py defines roles {sorted(ROLES)}, the README's table "
        f"{sorted(ROLE_TABLE)}. {HOW_TO_FIX}"
    )


def test_each_role_grants_exactly_the_readme_permissions():
    problems = []
    for key, (all_sites, expected) in sorted(ROLE_TABLE.items()):
        role = ROLES.get(key)
        if role is None:
            continue  # reported by test_the_roles_are_the_readme_roles
        extra = sorted(set(role.permissions) - expected)
        missing = sorted(expected - set(role.permissions))
        if extra:
            problems.append(f"{key} is granted {extra}, which the README's table does not give it")
        if missing:
            problems.append(f"{key} lacks {missing}, which the README's table gives it")
        if role.all_sites != all_sites:
            sees = "all sites" if all_sites else "its own sites only"
            problems.append(f"{key}.all_sites is {role.all_sites}; the README says it sees {sees}")
    assert not problems, "Roles differ from the README:\n  " + "\n  ".join(problems) + f"\n{HOW_TO_FIX}"


def test_the_study_permissions_are_the_ones_the_table_knows():
    codenames = {codename for codename, _ in STUDY_PERMISSIONS}
    assert codenames == ALL_PERMISSIONS, (
        f"STUDY_PERMISSIONS adds {sorted(codenames - ALL_PERMISSIONS)} and drops "
        f"{sorted(ALL_PERMISSIONS - codenames)} compared with tests/security/role_table.py. A new "
        "permission needs a line in the README's role table and in role_table.py saying who holds it."
    )
    granted = {p for _, perms in ROLE_TABLE.values() for p in perms}
    assert granted <= ALL_PERMISSIONS, sorted(granted - ALL_PERMISSIONS)
