"""The state versions the kill -9 test writes, and the process that writes them.

``python -m tests.faults.state_versions DIR`` is a zygote: it imports the agent once, then
for each line on stdin forks a child that saves version after version of the state in DIR
(each one derived from its number, so a torn or mixed file cannot pass for one), prints the
child's pid, and once the test has killed it, prints its wait status. Forking saves the
0.3 s interpreter start per kill.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agent.state import State
from agent.statedir import StateStore


def version(n: int) -> State:
    """Version ``n`` of the state: every field depends on ``n``."""
    return State(
        server_url=f"https://gw-{n}.test",
        fleet_node_id=n + 1,
        name=f"v{n}",
        identity_fingerprint=f"{n:016x}",
        identity_public_key=f"{n:064x}",
        identity_private_key=f"{n + 7:064x}",
        api_key=f"fleet_{n % 2**32:08x}_" + f"{n:043d}",
        session_token=f"{n:043d}",
    )


def number(state: State) -> int:
    """Which version ``state`` is; AssertionError when it is none of them."""
    n = int(state.name.removeprefix("v"))
    assert state == version(n), f"state.json is not version {n} in every field"
    return n


def save_forever(directory: Path) -> None:
    store = StateStore(directory)
    current = store.load()
    n = 0 if current is None else number(current)
    while True:
        n += 1
        store.save(version(n))


def main() -> None:
    directory = Path(sys.argv[1])
    for _line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            save_forever(directory)  # until SIGKILL
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(status, flush=True)


if __name__ == "__main__":
    main()
