pytest_plugins = ["tests.e2e.fixtures"]
