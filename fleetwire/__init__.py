"""fleetwire: the wire messages, Connect codes and JSON codec shared by agent and gateway.

It performs no I/O and imports neither trio nor asyncio.
"""
