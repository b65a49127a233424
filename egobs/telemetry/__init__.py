"""Observability of the control plane itself: metrics, traces, structured logs.

A cross-cutting layer: stages expose hooks, the wiring module connects them to
:class:`egobs.telemetry.core.Telemetry`; nothing here reaches back into a stage.
Submodules are imported explicitly (nothing is imported here), so that
``python -m egobs.telemetry.metrics`` defines each metric exactly once.
"""
