"""egobs's Grafana dashboards, written in Python with grafanalib.

One module per dashboard (its docstring says the question each panel answers);
:mod:`egobs.dashboards.kit` holds what they share. ``egobs dashboards generate`` writes
them as JSON (``dashboards/*.json``) and ``docs/dashboards.md``::

    from egobs.dashboards import render_all
    files = render_all()        # {"egobs-envoy.json": "...", ...}
"""

from __future__ import annotations

from egobs.dashboards.render import (
    DASHBOARDS,
    DOC_NAME,
    README_BEGIN,
    README_END,
    PanelQuery,
    all_queries,
    dashboard_json,
    markdown,
    readme_with_dashboards,
    render_all,
    write,
)

__all__ = [
    "DASHBOARDS",
    "DOC_NAME",
    "README_BEGIN",
    "README_END",
    "PanelQuery",
    "all_queries",
    "dashboard_json",
    "markdown",
    "readme_with_dashboards",
    "render_all",
    "write",
]
