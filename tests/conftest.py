"""Shared fixtures: an isolated Steward home per test, and the real services."""

from __future__ import annotations

pytest_plugins = ["tests.plugins.s3"]
