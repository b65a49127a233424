"""The Gateway API translator: resources to xDS IR, infra IR and Kubernetes statuses.

:func:`translate` is a pure function of its input; see :mod:`egobs.gatewayapi.translator`.
"""

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
    "Result",
    "SinkAddress",
    "TelemetryDefaults",
    "Translator",
    "sink_access_log",
    "translate",
]
