"""Tests of ``steward.client``: the HTTP client and remote services."""
