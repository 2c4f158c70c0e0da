"""Measurements read from images and the response computed from them (issue 17).

models.py: the stored shape (reports, lesions, measurements, computed responses);
response.py: RECIST 1.1 as pure functions; mrecist.py: the modified RECIST of PDX trials."""
