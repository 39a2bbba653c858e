"""Importable helpers for worker subprocesses started by the tests."""
