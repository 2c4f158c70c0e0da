"""Built-in check `response`: a reader's overall response that disagrees with the computed one.

The reader's response is the item the study's response rule names (ResponseRule.response_item,
`overall_response` by default: the item of the shipped RECIST 1.1 Overall Timepoint Response
Category element, capture.overall_response), in any form record of the subject at an event. The
computed response is the stored RECIST 1.1 response of the same subject at the same event
(capture/measurements/compute.py). Codes compare on letters and digits only, so NON_CR_NON_PD,
"Non-CR/Non-PD" and NON-CR/NON-PD agree. A record without the item, or an event with no computed
response, has nothing to compare. The message names the computed category, never the stored value
(rules.py: the data quality page is read by de-identified roles).
"""

from __future__ import annotations

import re

from capture.measurements.models import ResponseRule, TimepointResponse
from capture.records.models import FormRecord

from .rules import Finding

RULE = "response"
_NOT_CODE = re.compile(r"[^A-Z0-9]")


def _code(value) -> str:
    return _NOT_CODE.sub("", str(value).upper())


def find(study) -> dict[tuple, Finding]:
    """Findings by (record id, rule, field), as checks.find keys them."""
    item = ResponseRule.objects.filter(study=study).values_list("response_item", flat=True).first()
    item = "overall_response" if item is None else item
    if not item:
        return {}
    computed = {
        (subject, event): overall
        for subject, event, overall in TimepointResponse.objects.filter(
            study=study, method=TimepointResponse.RECIST, is_baseline=False
        )
        .exclude(event="")
        .values_list("subject_id", "event", "overall")
    }
    if not computed:
        return {}
    records = FormRecord.objects.filter(subject_id__in={subject for subject, _ in computed}).order_by()
    findings: dict[tuple, Finding] = {}
    for pk, subject, event, data in records.values_list("pk", "subject_id", "event__name", "data"):
        entered = data.get(item) if isinstance(data, dict) else None
        overall = computed.get((subject, event))
        if entered in (None, "", []) or overall is None or _code(entered) == _code(overall):
            continue
        findings[(pk, RULE, item)] = Finding(
            RULE,
            item,
            f"The overall response entered here disagrees with the one computed from the measurements "
            f"({overall}, RECIST 1.1; see the subject's timeline).",
        )
    return findings
