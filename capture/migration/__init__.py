"""Bringing a whole project from another system into Capture: its definitions, sites, subjects with
their own ids, and every record. `redcap` migrates a REDCap project from the files REDCap exports
(docs/migration.md)."""
