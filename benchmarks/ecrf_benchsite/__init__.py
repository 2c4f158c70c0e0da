"""The benchmark's own Django site (benchmarks/ecrf_bench.py): Capture plus the two references,
a hello-world view and a plain Django 40-field Form / ModelForm, served by the same gunicorn."""
