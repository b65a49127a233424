"""Listener/Route hostname intersection (Gateway API HTTPRoute.spec.hostnames semantics)."""

from __future__ import annotations

import pytest

from egobs.gatewayapi.hostnames import intersect, intersect_one


@pytest.mark.parametrize(
    ("listener", "route", "want"),
    [
        ("foo.example.com", "foo.example.com", "foo.example.com"),
        ("foo.example.com", "bar.example.com", None),
        # A wildcard needs at least one more label: *.example.com does not match example.com.
        ("*.example.com", "foo.example.com", "foo.example.com"),
        ("*.example.com", "a.b.example.com", "a.b.example.com"),
        ("*.example.com", "example.com", None),
        ("*.example.com", "fooexample.com", None),
        ("foo.example.com", "*.example.com", "foo.example.com"),
        ("example.com", "*.example.com", None),
        # Two wildcards: the narrower one is the overlap, whichever side it is on.
        ("*.example.com", "*.foo.example.com", "*.foo.example.com"),
        ("*.foo.example.com", "*.example.com", "*.foo.example.com"),
        ("*.example.com", "*.example.com", "*.example.com"),
        ("*.example.com", "*.example.org", None),
        ("*.com", "*.example.com", "*.example.com"),
    ],
)
def test_intersect_one(listener: str, route: str, want: str | None) -> None:
    assert intersect_one(listener, route) == want


def test_route_without_hostnames_takes_the_listeners() -> None:
    assert intersect("foo.example.com", ()) == ("foo.example.com",)
    assert intersect("*.example.com", ()) == ("*.example.com",)
    assert intersect(None, ()) == ("*",)


def test_listener_without_hostname_keeps_route_hostnames_deduplicated() -> None:
    assert intersect(None, ("b.example.com", "*.a.example.com", "b.example.com")) == (
        "b.example.com",
        "*.a.example.com",
    )


def test_non_matching_route_hostnames_are_ignored_in_route_order() -> None:
    route = ("x.example.com", "example.com", "y.example.org", "*.z.example.com", "*.com")
    assert intersect("*.example.com", route) == (
        "x.example.com",
        "*.z.example.com",
        "*.example.com",
    )


def test_no_overlap_is_empty() -> None:
    assert intersect("foo.example.com", ("bar.example.com", "*.example.org")) == ()
