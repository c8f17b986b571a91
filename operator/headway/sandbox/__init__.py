"""The local sandbox: an embedded API server, real model servers, Prometheus, load."""
