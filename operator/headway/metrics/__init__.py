"""Metric sources: one module per source behind one small Protocol (Prometheus first)."""
