"""The API fixtures (tokens per persona, a few records) are shared with tests/api."""

from tests.api.conftest import api_tokens, records, redcap_tokens  # noqa: F401 - fixtures, used by name
