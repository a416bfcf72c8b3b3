"""Secrets from stdin (SPEC 5.3): without echo on a TTY, one line per prompt when piped.

Prompts go to stderr so stdout holds only the command's result line.
"""

from __future__ import annotations

import getpass
from typing import TextIO

import trio

from agent.errors import EmptyInput


def read_secret(prompt: str, stdin: TextIO, stderr: TextIO) -> str:
    """One secret; :class:`EmptyInput` on an empty line or end of input."""
    if stdin.isatty():
        try:
            # getpass reads the controlling terminal without echo and writes the prompt to
            # ``stream``; stdin is that terminal here.
            line = getpass.getpass(prompt, stream=stderr)
        except EOFError:
            line = ""
    else:
        stderr.write(prompt)
        stderr.flush()
        line = stdin.readline()
        if line:
            stderr.write("\n")
    value = line.strip()
    if not value:
        raise EmptyInput(f"no input at the prompt {prompt.strip().rstrip(':')!r}")
    return value


async def ask_secret(prompt: str, stdin: TextIO, stderr: TextIO) -> str:
    """:func:`read_secret` off the event loop, so a signal still interrupts the wait."""
    return await trio.to_thread.run_sync(read_secret, prompt, stdin, stderr, abandon_on_cancel=True)
