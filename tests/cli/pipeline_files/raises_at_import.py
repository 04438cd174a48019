"""A pipeline file whose import fails: it needs something that is not there."""

from steward import pipeline, step

raise RuntimeError("the feature store is not reachable from here")


@step
def never() -> int:
    """Never defined."""
    return 1


@pipeline
def unreachable() -> int:
    """Never defined."""
    return never()
