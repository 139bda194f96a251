"""One module per CLI command; each takes a resolved Config and returns an exit status."""
