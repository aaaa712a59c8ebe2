"""Run the whole platform on one machine (``make run``, end-to-end tests)."""
