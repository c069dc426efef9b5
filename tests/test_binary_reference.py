"""Binary results stay exactly as they were before multi-class (NLI) support: same seed, same metrics."""

from __future__ import annotations

import json
import math

from tests.binary_reference import REFERENCE, reference_metrics


def test_binary_metrics_match_the_reference_recorded_before_multi_class_support() -> None:
    expected = json.loads(REFERENCE.read_text())
    actual = reference_metrics()
    assert sorted(actual) == sorted(expected)
    for setting, metrics in expected.items():
        assert sorted(actual[setting]) == sorted(metrics), setting
        moved = {
            name: (value, actual[setting][name])
            for name, value in metrics.items()
            if not math.isclose(actual[setting][name], value, rel_tol=1e-9, abs_tol=1e-12)
            and not (math.isnan(value) and math.isnan(actual[setting][name]))
        }
        assert not moved, f"{setting}: {len(moved)} metrics moved, e.g. {list(moved.items())[:3]}"
