"""Load generators for the gateway (see bench/README.md); never imported by the product."""
