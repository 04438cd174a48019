"""The graph of a pipeline run: nodes (step calls), the edges their inputs make, and a safe order."""

from __future__ import annotations

import graphlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.pipelines.dsl import Step


@dataclass
class Node:
    """One call of a step in a pipeline: its key, the step, and its arguments.

    Each argument is either a ``StepOutput`` (an edge from another node) or a constant value.
    """

    key: str
    step: Step
    inputs: Mapping[str, Any]
    after: tuple[str, ...] = ()

    def upstream(self) -> list[str]:
        """The keys of the nodes this one reads from (or must wait for), without repeats, in order."""
        seen: dict[str, None] = {}
        for value in self.inputs.values():
            for ref in iter_outputs(value):
                seen.setdefault(ref.node, None)
        for key in self.after:
            seen.setdefault(key, None)
        return list(seen)


def iter_outputs(value: Any) -> Iterator[Any]:
    """Yield every ``StepOutput`` inside ``value`` (itself, or in a list, tuple or dict of them)."""
    from steward.pipelines.dsl import StepOutput

    if isinstance(value, StepOutput):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_outputs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_outputs(item)


@dataclass
class Graph:
    """Nodes by key, in the order they were added."""

    nodes: dict[str, Node] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def unique_key(self, name: str) -> str:
        """``name`` for its first node, then ``name_2``, ``name_3`` …"""
        count = self._counts.get(name, 0) + 1
        self._counts[name] = count
        return name if count == 1 else f"{name}_{count}"

    def add(self, node: Node) -> None:
        """Add a node.

        Raises:
            InvalidInput: If a node with that key exists.
        """
        if node.key in self.nodes:
            raise InvalidInput(f"the pipeline already has a step named {node.key!r}", {"field": node.key})
        self.nodes[node.key] = node

    def upstream(self) -> dict[str, list[str]]:
        """Each node's upstream keys."""
        return {key: node.upstream() for key, node in self.nodes.items()}

    def validate(self) -> list[str]:
        """Check the graph can run; return its keys in a topological order.

        Raises:
            InvalidInput: If an input names an unknown step (or an output it does not have), or if
                the graph has a cycle (naming the steps on it).
        """
        if not self.nodes:
            raise InvalidInput("the pipeline calls no steps", {"field": "pipeline"})
        for node in self.nodes.values():
            for arg, value in node.inputs.items():
                for ref in iter_outputs(value):
                    source = self.nodes.get(ref.node)
                    if source is None:
                        raise InvalidInput(
                            f"step {node.key!r} input {arg!r} comes from unknown step {ref.node!r}",
                            {"field": arg, "step": node.key},
                        )
                    if ref.index >= source.step.n_outputs:
                        raise InvalidInput(
                            f"step {node.key!r} input {arg!r} reads output {ref.index} of {ref.node!r}, "
                            f"which has {source.step.n_outputs}",
                            {"field": arg, "step": node.key},
                        )
            for key in node.after:
                if key not in self.nodes:
                    raise InvalidInput(
                        f"step {node.key!r} waits for unknown step {key!r}",
                        {"field": "after", "step": node.key},
                    )
        try:
            return list(graphlib.TopologicalSorter(self.upstream()).static_order())
        except graphlib.CycleError as exc:
            cycle = exc.args[1]
            raise InvalidInput(
                f"the pipeline has a cycle: {' -> '.join(cycle)}", {"field": "pipeline", "cycle": cycle}
            ) from exc

    def dependants(self) -> dict[str, list[str]]:
        """Each node's direct downstream keys."""
        out: dict[str, list[str]] = {key: [] for key in self.nodes}
        for key, ups in self.upstream().items():
            for up in ups:
                out[up].append(key)
        return out
