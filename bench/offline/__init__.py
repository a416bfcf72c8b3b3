"""``python -m bench.offline``: how soon a real gateway records OFFLINE for nodes that stop at
once, how many statements its offline scan takes, and what recording connectivity events adds
to a heartbeat (against the same run on a gateway without them, ``--baseline-tree``)."""
