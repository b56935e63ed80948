"""One digest for every cache: a run's name, the run cache, the evaluation cache, the
memory probes. Same JSON value, same digest, on every machine."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(value: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``value`` as canonical JSON
    (keys sorted; what JSON cannot hold is written as its ``str``)."""
    blob = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
