"""CDISC ODM 1.3.2 metadata to and from Capture definitions; REDCap project XML in.

Writing (reusable by the exports app):

    metadata_version_element(forms, elements, schedule, oid=..., name=...) -> lxml <MetaDataVersion>
    write_odm(forms, elements, schedule, study_oid=..., study_name=...) -> (bytes, problems)
    validate_odm(data) -> list of schema errors (empty: valid against ODM 1.3.2 shipped in odmlib)

`forms`, `elements` and `schedule` are schema models (capture.definitions.schema); for a loaded study
use `capture.definitions.services.study_definitions(study)`. OIDs are stable and readable:
`SE.<arm>.<event>`, `F.<form>.<version>`, `IG.<form>.<version>.<n>`, `I.<public_id>.<version>`,
`CL.<public_id>.<version>`, `CD.<form>.<item>` (branching), `MT.<form>.<item>` (calculation). A clinical-
data writer puts ItemData under those OIDs.

What ODM has no element for is written as Alias: `Context="nci:ExtCodeID"` for concept codes (on
ItemDef for the element's concepts, on CodeListItem for a value's), `Context="caDSR"` for a registered
public id (`<id>v<version>`), `Context="Capture"` for the element/form ref, `Context="Capture:unit"`,
`Context="Capture:widget"`. Branching is a ConditionDef whose FormalExpression (Context "REDCap") is
`not (<expression>)`, because ODM's CollectionExceptionCondition says when an item is *not* collected.

Reading: an ODM file's first MetaDataVersion becomes elements (local ids `capture.odm.<project>.<name>`
unless a caDSR alias names a registered id), forms (one section per ItemGroupDef, a repeating group
stays repeating), and, when it has StudyEventDefs, a one-arm schedule. A REDCap project XML (the
`redcap:` attributes) is read field by field into dictionary rows and converted exactly as a
dictionary is, events and arms included.

The package is split by concern: `write` (metadata out), `read` (which kind of file), `cdisc` (CDISC
ODM metadata in), `redcap_xml` (REDCap project XML in) and `common` (namespaces, OIDs, lookups).
"""

from __future__ import annotations

from .common import DATATYPE_TO_ODM, ODM_NS, ODM_TO_DATATYPE, REDCAP_NS, XML_LANG
from .read import read_odm
from .write import metadata_version_element, validate_odm, write_odm

__all__ = [
    "DATATYPE_TO_ODM",
    "ODM_NS",
    "ODM_TO_DATATYPE",
    "REDCAP_NS",
    "XML_LANG",
    "metadata_version_element",
    "read_odm",
    "validate_odm",
    "write_odm",
]
