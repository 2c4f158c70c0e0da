"""A REDCap-compatible API (`/redcap/api/`), so that PyCap, REDCapR and existing REDCap
scripts work against Capture unchanged. A study is a REDCap "project"; a token names one
user in one study, and that user's role decides what the token may do."""
