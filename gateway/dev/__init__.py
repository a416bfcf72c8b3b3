"""``fleet-gateway dev`` and ``demo``: the gateway with no setup at all (a private
PostgreSQL from the host's binaries, a bootstrapped organization, a demo fleet). Not
needed in production; the tests and the benchmark reuse its PostgreSQL cluster."""
