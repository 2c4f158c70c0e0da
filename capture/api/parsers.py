"""Request parsers of the REST API: DRF's, with every malformed body answered as 400."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser


class JSONBodyParser(JSONParser):
    """DRF's JSON parser turns ValueError into a 400, but a body nested thousands of levels deep
    (`[[[[…]]]]`) makes the json module raise RecursionError, which would be a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None


PARSERS = [JSONBodyParser, FormParser, MultiPartParser]
