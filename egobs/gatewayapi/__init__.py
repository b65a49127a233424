"""The Gateway API translator: resources to xDS IR, infra IR and Kubernetes statuses.

:func:`translate` is a pure function of its input; see :mod:`egobs.gatewayapi.translator`.
"""

from egobs.gatewayapi.rejections import XDS_REJECTED, RejectionLike, merge_rejections
from egobs.gatewayapi.telemetry import (
    DEFAULT_TELEMETRY,
    SinkAddress,
    TelemetryDefaults,
    sink_access_log,
)
from egobs.gatewayapi.translator import DEFAULT_CONTROLLER_NAME, Result, Translator, translate

__all__ = [
    "DEFAULT_CONTROLLER_NAME",
    "DEFAULT_TELEMETRY",
    "XDS_REJECTED",
    "RejectionLike",
    "Result",
    "SinkAddress",
    "TelemetryDefaults",
    "Translator",
    "merge_rejections",
    "sink_access_log",
    "translate",
]
