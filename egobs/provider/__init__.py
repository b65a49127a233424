"""Providers: where resources come from (files now; Kubernetes later).

The control plane sees a provider only through :class:`Provider` (see
:mod:`egobs.provider.base` for the contract) and makes one with :func:`provider_from_config`.
"""

from egobs.provider.base import Provider, ProviderEvent, Publish, Report, ResourceSnapshot
from egobs.provider.factory import provider_from_config
from egobs.provider.file import FileProvider, ProviderStatus

__all__ = [
    "FileProvider",
    "Provider",
    "ProviderEvent",
    "ProviderStatus",
    "Publish",
    "Report",
    "ResourceSnapshot",
    "provider_from_config",
]
