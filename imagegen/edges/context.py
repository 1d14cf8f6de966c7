"""What every handler is given: the settings and the service, as factories (built on first use).

function_app.py builds one from imagegen.wiring; tests build their own with fakes. No handler reads
module globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from imagegen.core.service import ImageService
from imagegen.domain.settings import Settings


@dataclass(frozen=True)
class HandlerContext:
    settings: Callable[[], Settings]  # raises SettingsError when a setting is missing or malformed
    service: Callable[[], ImageService]
