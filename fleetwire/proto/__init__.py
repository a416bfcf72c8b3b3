"""The published schema: both services as ``.proto`` files, shipped in the distribution.

Third-party Connect clients (connect-go, connect-es, the ``connectrpc`` Python package,
``buf curl``) generate their code from these files instead of writing the schema
themselves. :data:`ROOT` is the import root (``-I`` for protoc, ``--schema`` for
``buf curl``); :data:`FILES` are the files, relative to it, as each ``import`` names
them. The messages in ``fleetwire.messages`` are the contract; a test keeps these files
in step with them.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
FILES = (
    "fleetnodegateway/v1/node_facts.proto",
    "fleetnodegateway/v1/gateway.proto",
    "fleetnodeadmin/v1/admin.proto",
)
