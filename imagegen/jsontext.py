"""JSON from outside this process (request bodies, queue messages, upstream answers, stored records).

`json.loads` fails in more ways than JSONDecodeError: bytes that are not UTF-8 (UnicodeDecodeError),
nesting deeper than the interpreter's recursion limit (RecursionError, a RuntimeError), and integers
with more digits than Python converts (a plain ValueError). All of them become NotJson here, with a
reason that says which, never the text itself (it may hold a prompt).
"""

from __future__ import annotations

import json
from typing import Any


class NotJson(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_json(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise NotJson(f"{error.msg} at position {error.pos}") from None
    except UnicodeDecodeError:
        raise NotJson("not UTF-8 text") from None
    except RecursionError:
        raise NotJson("nested too deeply") from None
    except ValueError:
        raise NotJson("a number has too many digits") from None
