"""Values from outside (ids, field names, URLs from a message or a request) as they may be logged.

A CR, LF, ANSI escape or Unicode line separator in a logged value would forge log lines or recolour a
terminal; `escaped` writes every character that is not printable as its escape (and backslashes
doubled, so an escape in the output is always ours), and cuts long values.
"""

from __future__ import annotations

MAX_LOGGED_CHARS = 120
ELLIPSIS = "…"


def escaped(value: object, *, limit: int = MAX_LOGGED_CHARS) -> str:
    text = str(value)
    shown = "".join(
        character
        if character.isprintable() and character != "\\"
        else character.encode("unicode_escape").decode()
        for character in text[:limit]
    )
    return shown + (ELLIPSIS if len(text) > limit else "")
