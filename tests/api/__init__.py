"""Tests of ``steward.api``: the REST API over real HTTP."""
