"""Benchmarks of durable-mail against the designs our users came from (`python -m bench.run`)."""
