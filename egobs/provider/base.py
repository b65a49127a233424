"""What a provider is to the control plane: a small typed protocol.

A provider owns where resources come from (files today; a Kubernetes watch next) and hands
the control plane whole, consistent resource sets. The control plane knows nothing else of
it: it starts it, stops it, takes each :class:`ResourceSnapshot` it publishes, takes a
:class:`ProviderEvent` per change for metrics and logs, and asks for the load errors in
force per source (:meth:`Provider.errors`) for ``/debug/status``.

Contract for implementations:

* ``publish`` is called from the control plane's event loop with the complete current set
  (never a delta). Objects that did not change should be the very same Python objects as in
  the last set: the translators use identity to skip work. Handing back copies is correct,
  only slower.
* An object that fails to load is reported in ``errors()`` under its source; what was
  accepted before from that source keeps being published (last good).
* ``start`` returns once the first set is published; ``stop`` returns once nothing more
  will be published.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.trace import SpanContext

from egobs.resources import ResourceError, Resources

__all__ = ["Provider", "ProviderEvent", "Publish", "Report", "ResourceSnapshot"]


@dataclass(frozen=True, slots=True)
class ResourceSnapshot:
    """One consistent resource set, and the change behind it.

    ``event_time`` is the wall-clock time of the earliest source change merged into it (what
    convergence latency is measured from). ``trace_context`` is the trace the change belongs
    to when the source carries one (an annotation written by whoever made the change, say);
    None starts a new trace.
    """

    resources: Resources
    event_time: float
    trace_context: SpanContext | None = None


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """What one change did, for metrics and logs. Sources are named as the provider names
    them (file paths for the file provider)."""

    event_time: float
    created: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    errors: tuple[ResourceError, ...] = ()
    changed: bool = False  # whether the published resource set changed


Publish = Callable[[ResourceSnapshot], None]
Report = Callable[[ProviderEvent], None]


class Provider(Protocol):
    """A source of resources; see the module docstring for the contract."""

    @property
    def kind(self) -> str:
        """The provider's name in metrics and logs (``file``)."""
        ...

    async def start(self) -> None:
        """Load everything once, publish it, then follow changes in the background."""
        ...

    async def stop(self) -> None: ...

    def errors(self) -> Mapping[str, Sequence[ResourceError]]:
        """The load errors in force, by source (a source without errors is absent)."""
        ...
