"""Test support: pytest fixtures for a real broker and Redis, service harnesses, benchmarks."""
