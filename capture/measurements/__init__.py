"""Measurements read from images and the response computed from them (issue 17).

Pure computation for now (response.py: RECIST 1.1; mrecist.py: mRECIST of PDX trials); not yet a
Django app in INSTALLED_APPS."""
