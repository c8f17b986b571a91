"""Traffic providers: pure renderers of route objects, one module per provider."""
