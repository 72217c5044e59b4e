"""Helpers shared by the test modules (import them: `from tests.helpers.scripts import TINY`); the
fixtures every folder uses are defined once in tests/helpers/fixtures.py and registered by tests/conftest.py."""
