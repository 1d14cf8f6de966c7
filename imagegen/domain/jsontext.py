"""JSON from outside this process (request bodies, queue messages, upstream answers, stored records).

`json.loads` fails in more ways than JSONDecodeError: nesting deeper than the interpreter's recursion
limit (RecursionError, a RuntimeError) and integers with more digits than Python converts (a plain
ValueError). It also accepts what later code cannot use: UTF-16 and UTF-32 bytes (JSON between
systems is UTF-8, RFC 8259) and `\\u` escapes of half a surrogate pair, which no UTF-8 encoder takes
(hashing, storing, sending). All of these become NotJson here, with a reason that says which, never
the text itself (it may hold a prompt).
"""

from __future__ import annotations

import json
import re
from typing import Any

# A \u escape of a surrogate (D800-DFFF). Pairs decode to one character; a lone half stays a lone
# surrogate in the str, which no UTF-8 encoder accepts later (hashing, logging, storing, sending).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class NotJson(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_json(data: bytes | str) -> Any:
    try:
        text = data.removeprefix("\ufeff") if isinstance(data, str) else data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotJson("not UTF-8 text") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise NotJson(f"{error.msg} at position {error.pos}") from None
    except RecursionError:
        raise NotJson("nested too deeply") from None
    except ValueError:
        raise NotJson("a number has too many digits") from None
    if _SURROGATE_ESCAPE.search(text) is not None and _holds_a_lone_surrogate(document):
        raise NotJson("a \\u escape is half of a surrogate pair, not a character")
    return document


def _holds_a_lone_surrogate(document: Any) -> bool:
    """Any key or string value that is not encodable text (walked without recursion: the document
    may be nested almost as deep as the parser allows)."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False
