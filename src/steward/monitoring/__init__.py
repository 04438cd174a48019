"""monitoring: drift (mergeable summaries, per-feature tests, a domain classifier), performance on late
labels, fairness, operations, monitors with rules, alerts and their channels (webhook, e-mail).

``MonitoringService`` (``service.py``) is the entry point; ``steward.create_monitor`` and friends the SDK.
"""
