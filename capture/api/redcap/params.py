"""Reading a REDCap API request's parameters the way REDCap does."""

from __future__ import annotations

import re

from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

TRUE = {"true", "1", "yes", "y", "on"}
_INDEXED = re.compile(r"^(?P<name>[A-Za-z_]+)\[(?P<index>\d*)\]$")


class RedcapError(Exception):
    """An error REDCap would answer with: the message, and the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


class Params:
    """A request's parameters; `files` holds a multipart body's uploaded files (`content=file`)."""

    def __init__(self, data: QueryDict, files: MultiValueDict | None = None):
        self.data = data
        self.files = files if files is not None else MultiValueDict()

    def get(self, name: str, default: str = "") -> str:
        value = self.data.get(name)
        return default if value is None else value.strip()

    def flag(self, name: str, default: bool = False) -> bool:
        """REDCap booleans: `true`, `True`, `1` (and `false`, `0`)."""
        value = self.data.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip().lower() in TRUE

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.get(name, default).lower() or default
        if value not in allowed:
            raise RedcapError(
                f'The value of the parameter "{name}" is not valid: {value!r}. Use one of: {", ".join(allowed)}.'
            )
        return value

    def items(self, name: str) -> list[str]:
        """A list given as `name[0]=a&name[1]=b`, `name[]=a`, or `name=a,b` (or several of these)."""
        indexed: list[tuple[int, int, str]] = []
        order = 0
        for key in self.data:
            match = _INDEXED.match(key)
            if match and match["name"] == name:
                index = int(match["index"]) if match["index"] else 10**9
                for value in self.data.getlist(key):
                    indexed.append((index, order, value))
                    order += 1
        values = [v for _, _, v in sorted(indexed)]
        for raw in self.data.getlist(name):
            values.extend(raw.split(","))
        seen: dict[str, None] = {}
        for value in values:
            value = value.strip()
            if value:
                seen.setdefault(value, None)
        return list(seen)
