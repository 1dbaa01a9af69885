"""The request load the interactive and batch profiles put on the server: one level, or a sweep.

Without `sweep` a profile sends its own number of requests one at a time (closed loop, concurrency 1), as
it always did; with one it runs the sweep's levels. Either way every request is recorded, the records go
to the context's sink, and the metrics gain percentiles, the traffic actually sent and the levels.
The profile's headline figures (`ttft_seconds`, `tokens_per_second`, the percentiles, `goodput_rps`) are
those of its best sustainable level, or of its lowest level when none was sustainable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeinfer.bench.intervals import interval_key
from kubeinfer.bench.load.driver import AfterRequest, Level, LevelDriver, LevelRun, RequestOptions
from kubeinfer.bench.load.prompts import Framing, PromptBuilder
from kubeinfer.bench.load.shapes import default_scenario, sample_conversations, scenario_of
from kubeinfer.bench.load.stats import traffic_sent
from kubeinfer.bench.load.sweep import LevelResult, SweepResult, run_sweep, sweep_levels
from kubeinfer.bench.profiles.base import TEMPLATE_MARGIN_TOKENS, ProfileContext
from kubeinfer.resources.benchmark_matrix import LoadSettings

#: Level figures repeated at the top of the profile's metrics (from its headline level).
HEADLINE_KEYS = (
    "ttft_seconds",
    "tokens_per_second",
    "variance_percent",
    "server_ttft_seconds",
    "server_tokens_per_second",
    "ttft_p50_seconds",
    "ttft_p90_seconds",
    "ttft_p95_seconds",
    "ttft_p99_seconds",
    "itl_p50_seconds",
    "itl_p90_seconds",
    "itl_p95_seconds",
    "itl_p99_seconds",
    "e2e_p50_seconds",
    "e2e_p90_seconds",
    "e2e_p95_seconds",
    "e2e_p99_seconds",
    "queue_wait_p95_seconds",
    "achieved_rps",
    "output_tokens_per_second",
    "input_tokens_per_second",
    "goodput_rps",
    "meets_slo",
)


@dataclass(frozen=True)
class ProfileLoad:
    """What a profile sends when the manifest gives no scenario, and how many requests without a sweep."""

    name: str
    settings: LoadSettings
    framing: Framing
    input_tokens: int
    output_tokens: int
    single_requests: int
    warm_up: bool = False


@dataclass
class LoadOutcome:
    load: ProfileLoad
    scenario: str
    result: SweepResult
    headline: LevelResult

    @property
    def swept(self) -> bool:
        return self.load.settings.sweep is not None

    def metrics(self) -> dict[str, Any]:
        level = self.headline.to_json()
        wanted = [*HEADLINE_KEYS, *(interval_key(key) for key in HEADLINE_KEYS)]
        metrics: dict[str, Any] = {key: level[key] for key in wanted if key in level}
        traffic = self.load.settings.traffic
        records = [r for result in self.result.levels for r in result.run.records]
        metrics["traffic"] = {
            "scenario": self.scenario,
            "shared_prefix_tokens": traffic.shared_prefix_tokens,
            "shared_prefix_share": traffic.shared_prefix_share,
            "seed": traffic.seed,
        } | traffic_sent(records)
        metrics["level"] = self.headline.level.label
        metrics["levels"] = [result.to_json() for result in self.result.levels]
        if self.swept:
            metrics["saturation"] = self.result.stops
            metrics["saturation_reason"] = self.result.reason
        best = self.result.best()
        metrics["sustainable"] = None if best is None else sustainable(best, self.swept)
        return metrics


#: The sustainable level's keys and the level figures they are read from.
SUSTAINABLE_RATES = {
    "rps": "achieved_rps",
    "output_tokens_per_second": "output_tokens_per_second",
    "input_tokens_per_second": "input_tokens_per_second",
}


def sustainable(level: LevelResult, swept: bool) -> dict[str, Any]:
    """The best sustainable level's rates, each with its 95% interval (`rps_interval`, ...) where it has one."""
    found: dict[str, Any] = {"level": level.level.label, "swept": swept}
    for key, rate in SUSTAINABLE_RATES.items():
        found[key] = level.summary[rate]
        if (interval := level.summary.get(interval_key(rate))) is not None:
            found[interval_key(key)] = interval
    return found


def run_load(ctx: ProfileContext, load: ProfileLoad, after_request: AfterRequest | None = None) -> LoadOutcome:
    """Send the profile's load (raises Interrupted or ServerError as the client does) and record it."""
    settings, traffic = load.settings, load.settings.traffic
    scenario = scenario_of(traffic, load.input_tokens, load.output_tokens)
    per_level = settings.sweep.requests_per_level if settings.sweep else load.single_requests
    conversations = sample_conversations(traffic, scenario, per_level, ctx.max_context, TEMPLATE_MARGIN_TOKENS)
    longest = max(shape.input_tokens for c in conversations for shape in c.turns)
    text = traffic.scenario or default_scenario(load.input_tokens, load.output_tokens)
    cache = traffic.turns > 1 or traffic.shared_prefix_share > 0
    options = RequestOptions(temperature=load.framing.temperature, cache_prompt=cache, seed=traffic.seed)
    with ctx.client() as client:
        builder = PromptBuilder(client, load.framing, longest, traffic.shared_prefix_tokens, traffic.seed)
        if load.warm_up or settings.sweep is not None:
            client.stream_chat([{"role": "user", "content": "Hello"}], 4, cache_prompt=False)
        driver = LevelDriver(client, load.name, options, after_request)

        def run_level(level: Level) -> LevelRun:
            messages = [builder.conversation(c) for c in conversations]
            ctx.log(f"{load.name}: {level.label}: {per_level} runs of {text}")
            return driver.run(level, conversations, messages)

        if settings.sweep is None:
            series = [[Level("concurrency", 1.0)]]
            gain = 0.0
        else:
            series, gain = sweep_levels(settings.sweep), settings.sweep.saturation_gain_percent
        result = run_sweep(series, run_level, settings.slo, gain, log=lambda m: ctx.log(f"{load.name}: {m}"))
    if ctx.records is not None:
        ctx.records(load.name, [r.to_json() for level in result.levels for r in level.run.records])
    headline = result.best() or result.levels[0]
    return LoadOutcome(load, text, result, headline)
