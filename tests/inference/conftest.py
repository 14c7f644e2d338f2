"""Fixtures for inference tests live in tests/conftest.py (survey, trained, searchable)."""
