#!/usr/bin/env python
"""Django's command-line utility for Capture.

Without DJANGO_SETTINGS_MODULE it runs with the development settings and says so on stderr: a
command meant for a deployment's database must name its settings (capture.settings.production).
Development's pseudonym key is var/pseudonym.key, made once, never one from the repository; a
database made under another key refuses to run (capture/studies/pseudonyms.py).
"""

import os
import sys

if __name__ == "__main__":
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        os.environ["DJANGO_SETTINGS_MODULE"] = "capture.settings.dev"
        print(
            "manage.py: DJANGO_SETTINGS_MODULE is not set: using capture.settings.dev (development only; "
            "for a deployment set DJANGO_SETTINGS_MODULE=capture.settings.production).",
            file=sys.stderr,
        )
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
