"""Property-based tests of the translators (issue 13 item 5).

Mostly valid resource sets (see :func:`fuzz_strategies.resource_set`) and mixes of the
golden inputs go through the Gateway API translator and then the xDS translator:

* neither raises;
* every GatewayClass and Gateway we own, and every route with a parentRef to one of our
  Gateways, gets a status (and nothing else does), with conditions the API server accepts,
  a listener status per listener and a parent status per parentRef;
* a Gateway is in the IR exactly when its status says Programmed;
* translation is pure, and the memoizing Translators (Gateway API and xDS) give what a
  fresh translation gives, after any earlier input;
* every cluster a listener or route names exists, listener names are unique, the proxy
  bootstraps render; and, for a sample, real Envoy accepts the configuration
  (``envoy --mode validate``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fuzz_strategies import (
    NOW,
    check_translation,
    fuzz_settings,
    golden_mix,
    parse_all,
    resource_set,
)
from hypothesis import given
from hypothesis import strategies as st
from testkit import envoy_validate

from egobs import gatewayapi
from egobs.resources import Resources
from egobs.xds.translate import Translator as XdsTranslator
from egobs.xds.translate import translate as translate_xds

# celpy (CEL access-log matches) raises the recursion limit when first used; harmless.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The recursion limit will not be reset:hypothesis.errors.HypothesisWarning"
)


@fuzz_settings(max_examples=200)
@given(resource_set())
def test_generated_resource_sets_translate(docs: list[dict[str, Any]]) -> None:
    check_translation(parse_all(docs))


@fuzz_settings(max_examples=100)
@given(golden_mix())
def test_mixed_golden_inputs_translate(docs: list[dict[str, Any]]) -> None:
    check_translation(parse_all(docs))


@fuzz_settings(max_examples=60)
@given(resource_set(), resource_set(), st.data())
def test_translators_after_earlier_input_equal_a_fresh_translation(
    first: list[dict[str, Any]], second: list[dict[str, Any]], data: st.DataObject
) -> None:
    """The memoizing translators, fed one input and then another that keeps some of the
    first's objects (the same objects, as a provider hands back what did not change),
    give what fresh translations give."""
    before = parse_all(first)
    kept = data.draw(st.lists(st.sampled_from(before), unique_by=id)) if before else []
    keys = {o.key for o in kept}
    after = kept + [o for o in parse_all(second) if o.key not in keys]
    translator = gatewayapi.Translator()
    translator.translate(Resources.of(before), now=NOW)
    result = translator.translate(Resources.of(after), now=NOW)
    fresh = gatewayapi.translate(Resources.of(after), now=NOW)
    assert result == fresh

    old = gatewayapi.translate(Resources.of(before), now=NOW)
    xds = XdsTranslator()
    for gw in old.gateways.values():
        xds.translate(gw)
    for name, gw in fresh.gateways.items():
        assert xds.translate(gw) == translate_xds(gw), name


@pytest.mark.envoy
@fuzz_settings(max_examples=40)
@given(st.one_of(resource_set(), golden_mix()))
def test_envoy_accepts_what_is_translated(envoy_bin: str, docs: list[dict[str, Any]]) -> None:
    """Every Gateway's xDS, as a static bootstrap, passes ``envoy --mode validate``."""
    translated = check_translation(parse_all(docs))
    with tempfile.TemporaryDirectory(prefix="egobs-fuzz-") as tmp:
        for name, boot in translated.bootstraps.items():
            config = Path(tmp) / "bootstrap.json"
            config.write_text(json.dumps(boot))
            problem = envoy_validate(envoy_bin, config)
            assert problem is None, f"{name}: {problem}"
