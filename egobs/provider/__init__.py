"""Providers: where resources come from (files now; Kubernetes later)."""

from egobs.provider.file import FileProvider, ProviderEvent, ProviderStatus

__all__ = ["FileProvider", "ProviderEvent", "ProviderStatus"]
