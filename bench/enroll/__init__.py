"""``python -m bench.enroll``: a thousand nodes enrolling at once with one pre-approved code,
through the agent's own ``fleetnode enroll`` code path, against a real gateway."""
