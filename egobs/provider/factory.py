"""The provider a config asks for (the only place that knows every implementation)."""

from __future__ import annotations

from egobs.config import ProviderConfig
from egobs.provider.base import Provider, Publish, Report
from egobs.provider.file import FileProvider

__all__ = ["provider_from_config"]


def provider_from_config(config: ProviderConfig, *, publish: Publish, report: Report) -> Provider:
    """The provider of ``config`` (only ``file`` exists today), wired to the two callbacks."""
    return FileProvider(
        config.file.paths, publish=publish, on_event=report, debounce_ms=config.file.debounce_ms
    )
