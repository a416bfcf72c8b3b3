"""The gateway tests' helper modules (``http_support``, ``service_support``) sit next to
them; with ``--import-mode=importlib`` pytest does not put this directory on
``sys.path``, so it is added here, once."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
