"""REDCap API methods Capture does not offer answer REDCap's own error, in the asked format, and
change nothing; each says why in docs/api.md's coverage table (the `unsupported=` of its mark)."""

from __future__ import annotations

import pytest

from capture.audit.models import AuditEvent

URL = "/redcap/api/"
ADMIN_PAGES = "sites, members and roles are managed in Capture's administration pages"
NO_SURVEYS = "Capture has no surveys"


def case(content, action, why, error):
    return pytest.param(
        content,
        action,
        error,
        marks=pytest.mark.redcap(content, action, unsupported=why),
        id=f"{content}-{action}",
    )


CASES = [
    case("dag", "import", ADMIN_PAGES, "does not change dag"),
    case("dag", "delete", ADMIN_PAGES, "does not change dag"),
    case("dag", "switch", "a member's sites are set by a study administrator", "does not change dag"),
    case("userDagMapping", "import", ADMIN_PAGES, "does not change userDagMapping"),
    case("user", "delete", ADMIN_PAGES, "does not change user"),
    case("userRole", "delete", ADMIN_PAGES, "does not change userRole"),
    case("project", "create", "studies are created in Capture", "does not change project"),
    case("project_settings", "import", "a study's settings are changed in Capture", '"content" is not valid'),
    case(
        "project_xml", "export", "Capture writes CDISC ODM from its dataset exports", '"content" is not valid'
    ),
    case("record", "rename", "subject ids follow the study's id policy", '"action" is not valid'),
    case("surveyLink", "export", NO_SURVEYS, '"content" is not valid'),
    case("participantList", "export", NO_SURVEYS, '"content" is not valid'),
    case("surveyQueueLink", "export", NO_SURVEYS, '"content" is not valid'),
    case("surveyReturnCode", "export", NO_SURVEYS, '"content" is not valid'),
    case("surveyAccessCode", "export", NO_SURVEYS, '"content" is not valid'),
    case("fileRepository", "list", "Capture has no file repository", '"content" is not valid'),
    case("fileRepository", "createFolder", "Capture has no file repository", '"content" is not valid'),
    case("fileRepository", "export", "Capture has no file repository", '"content" is not valid'),
    case("fileRepository", "import", "Capture has no file repository", '"content" is not valid'),
    case("fileRepository", "delete", "Capture has no file repository", '"content" is not valid'),
]


@pytest.mark.parametrize(("content", "action", "error"), CASES)
def test_a_method_capture_does_not_offer_is_a_redcap_error(
    client, redcap_tokens, records, content, action, error
):
    events = AuditEvent.objects.count()
    body = {"token": redcap_tokens["admin"], "content": content, "action": action, "format": "json"}
    body |= {"data": "[]", "record": "A-0001", "new_record_name": "A-0009", "dag": "b"}
    response = client.post(URL, body)
    assert response.status_code == 400, response.content[:200]
    assert error in response.json()["error"]
    xml = client.post(URL, {**body, "format": "xml"})
    assert xml.status_code == 400 and "<error>" in xml.content.decode()
    assert AuditEvent.objects.count() == events
