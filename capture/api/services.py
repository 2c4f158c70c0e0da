"""Record deletion for the REDCap API: the record service's one `delete_record`, named here for
`capture.api.redcap.records` until it imports it from `capture.records.services` itself."""

from __future__ import annotations

from capture.records.services import DELETE_PERMISSION, delete_record

__all__ = ["DELETE_PERMISSION", "delete_record"]
