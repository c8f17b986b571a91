"""I/O adapter for the Kubernetes API: apply children, patch status, post Events."""
