"""The `framesel` command line."""
