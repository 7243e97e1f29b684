"""Features at video positions: the activation store (store.py); SAEs and probes build on it."""
