"""Sizing against the truth for both bundled models: llama-server's measured peak RSS (issue 15, part 9).

Each point starts the real llama-server with the flags kubeinfer gives it, fills every slot at once with a prompt
as long as the slot allows up to a full batch (`perf/calibrate_sizing.py`, which `make bench` runs at eight
points per model), and compares its VmHWM with `estimate_memory`. Memory, not time: the figures do not depend on
how busy the machine is. The points are the quickstart's engine (4096 context, 1 slot), the session server's
(4096, 4 slots) and a long context over 4 slots, where Gemma's sliding-window layers keep only their window.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeinfer.engines.llamacpp_build import EngineInstall
from perf.calibrate_sizing import TARGET_PERCENT, measure_point

MODELS = ["smollm2_gguf", "gemma3_gguf"]
POINTS = [(4096, 1), (4096, 4), (16384, 4)]
#: make test-fast measures each model at one slot and Gemma's sliding window at 16384; make test every point.
FAST = {("smollm2_gguf", 4096, 1), ("gemma3_gguf", 4096, 1), ("gemma3_gguf", 16384, 4)}
CASES = [
    pytest.param(model, ctx, parallel, marks=() if (model, ctx, parallel) in FAST else pytest.mark.slow)
    for model in MODELS
    for ctx, parallel in POINTS
]


@pytest.mark.parametrize(("model", "ctx_size", "parallel"), CASES)
def test_the_estimate_is_within_5_percent_of_the_measured_peak_rss(
    model: str, ctx_size: int, parallel: int, engine_install: EngineInstall, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(model)
    point = measure_point(engine_install.llama_server, path, ctx_size, parallel, threads=2)
    summary = {k: point[k] for k in ("estimated_bytes", "measured_peak_rss_bytes", "error_percent")}
    assert abs(point["error_percent"]) <= TARGET_PERCENT, (summary, point["llama_log_buffers_mib"])
