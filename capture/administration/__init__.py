"""Study administration pages: members and rights, sites, settings, the audit log (issue 15).

Views are thin: they ask capture/studies/access.py who may do what, call the workflows of
capture/studies/services.py (which check again and audit), and read the audit trail through
`auditlog.py`, which shows values through the disclosure policy (capture/audit/shown.py).
"""
