"""Pure builders of Kubernetes workload objects (Deployment, Service, PDB)."""
