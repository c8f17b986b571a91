"""A real data plane for end-to-end tests: BentoML servers, Prometheus, a load generator."""
