"""Settings of the worker and server processes the fault tests start: the test settings, with
the media folder of the test that started them (MEDIA_ROOT is not read from the environment
elsewhere, and the processes must write where the test looks)."""

import os

from capture.settings.test import *  # noqa: F403

MEDIA_ROOT = os.environ["CAPTURE_FAULTS_MEDIA"]
