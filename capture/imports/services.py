"""Spreadsheet import workflows: upload, suggest a mapping, dry run, commit, annotated report.

The shape follows pretix's import: the mapping resolves into column objects that clean and assign
(columns.py); every row is cleaned and validated first (plan.py, which writes nothing) and compared
with the stored records by the record service's own rules (compare.py); only a plan with no problem
is written, in one transaction, through `capture.records.bulk.write_records` (commit.py), with one
`import.commit` audit event beside each record's own event. Re-importing the same file changes
nothing: records are matched by subject × event × form × instance and unchanged ones are skipped.
annotate.py writes the dry run's problems into a copy of the workbook.

This module names the workflows for the views, the jobs and the command; the work is in:
  uploads.py    who may import, the uploaded files, saved mappings
  structure.py  the study's schedule as lookups, the suggested mapping
  columns.py    the column objects (resolve, clean, assign)
  plan.py       build_plan: every row cleaned into RowPlans (rows.py; fastpath.py: each distinct cell once)
  compare.py    each RowPlan validated and compared with its stored record
  commit.py     run_import: read, plan, write or report
  annotate.py   the annotated workbook
  report.py     problems, the plan and its report
"""

from .annotate import PROBLEM_FILL, annotated_workbook
from .commit import read, run_import
from .plan import PROGRESS_EVERY, build_plan
from .report import (
    MAX_STORED_PROBLEMS,
    VALUE_SHOWN,
    ImportRefusedError,
    Plan,
    Problem,
    Progress,
    cell_text,
    describe,
    shorten,
)
from .rows import RowPlan
from .structure import StudyForms, SubjectRef, mapping_column, redcap_spec, suggest_mapping
from .uploads import (
    PERMISSION,
    check_may_import,
    get_upload,
    remembered_mapping,
    save_mapping,
    store_upload,
    upload_path,
)

__all__ = [
    "MAX_STORED_PROBLEMS",
    "PERMISSION",
    "PROBLEM_FILL",
    "PROGRESS_EVERY",
    "VALUE_SHOWN",
    "ImportRefusedError",
    "Plan",
    "Problem",
    "Progress",
    "RowPlan",
    "StudyForms",
    "SubjectRef",
    "annotated_workbook",
    "build_plan",
    "cell_text",
    "check_may_import",
    "describe",
    "get_upload",
    "mapping_column",
    "read",
    "redcap_spec",
    "remembered_mapping",
    "run_import",
    "save_mapping",
    "shorten",
    "store_upload",
    "suggest_mapping",
    "upload_path",
]
