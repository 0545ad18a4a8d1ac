"""Type stubs for the compiled SIGBUS-guard module (it has no Python-visible names)."""
