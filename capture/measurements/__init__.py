"""Measurements read from images and the response computed from them (issue 17; docs/imaging.md).

In:      sr.py (TID 1500 SRs read with highdicom) → ingest.py (de-identified, linked, queued);
         capture/imports/measurement_sheet.py (measurement sheets); both write through store.py.
Queue:   queue.py, views.py, urls.py (the study's reports and the linkage queue).
Lesions: designation.py, pages.py, response_urls.py (targets at baseline, non-target statuses).
Compute: response.py (RECIST 1.1), mrecist.py (PDX mRECIST), compute.py (stored data → stored
         responses), response_rule.py (the study's confirmation rule).
Codes:   concepts.py (the measurement concepts responses read), vocabulary.py (names and UCUM units
         a sheet may use).
"""
