"""fleetctl: the operator's command line, a Connect client of the admin API."""
