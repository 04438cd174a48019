"""Experiment tracking: experiments, runs, parameters, metrics, tags, artifacts and search."""
