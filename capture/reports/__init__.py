"""Saved reports: a data manager's choice of fields, events, filter logic and sort, read as a
table, a CSV, or REDCap's `content=report` — all three from the REDCap record export's rows."""
