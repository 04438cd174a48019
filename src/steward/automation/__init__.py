"""automation: triggers (cron, interval, new dataset versions), the scheduler that fires each once across
processes (a lease and a firing key in the database) and runs monitors, and the actions they start
(a pipeline run, an endpoint's rollback), each audited with its cause.
"""
