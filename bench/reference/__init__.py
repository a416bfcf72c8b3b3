"""The reference ceiling of bench.heartbeats: a minimal aiohttp server (see __main__)."""
