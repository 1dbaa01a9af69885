"""Truth checks (issue 15, part 9): the interactive profile's tokens/s and time to first token agree with
llama-bench, and with llama-server's own `timings`, at the same KV depth and threads, within 5%.

llama-bench decodes and processes prompts with no server, no sampling and no HTTP in between; its `-d` starts at
the depth the profile's prompt leaves in the KV cache (without it llama-bench decodes over an empty cache and reads
about 12% faster). Both sides run here, interleaved, in one test: a ratio measured side by side, not a timed
assertion. Other work on a shared machine comes in bursts and only ever slows a sample down, so each side's figure
is its fastest sample of several (the one least disturbed), taken in alternating rounds so that both sides meet the
same spells of load. The server's `timings` come with the same requests the client timed, so those ratios are the
median over the requests.

The server here leaves one core free: with as many compute threads as cores, the server's HTTP thread writing each
streamed token and the profile's client reading it take CPU from the compute threads, and streamed decoding ran
3-10% below llama-bench on 2 cores while the same requests unstreamed matched it (docs/testing.md, "Truth checks").
That is a cost of measuring on the machine being measured, not of the profile's timing, which this test checks.
Even with the spare core the server needs a little more than one core (compute, HTTP thread, client) where
llama-bench needs one, so other work beside the test lowers the decode ratio first: 0.98-0.99 on a quiet machine,
0.96 beside one process spinning on a core (docs/testing.md). make test runs these checks alone, before the rest.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.bench.profiles import PROFILE_RUNNERS, ProfileContext
from kubeinfer.engines.llamacpp_build import EngineInstall
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig
from kubeinfer.resources.benchmark_matrix import Profiles

#: Ratios measured side by side still need the machine to themselves: make test runs these tests alone, before
#: its parallel run (the `serial` marker).
pytestmark = pytest.mark.serial

TOLERANCE = 0.05
#: Alternating rounds of one profile run (RUNS requests) and one llama-bench call of each kind (RUNS repetitions).
ROUNDS = 4
RUNS = 2
GENERATE = 64
#: The profile's prompts, built to a token count, may differ by a token or two; llama-bench runs at their median.
DEPTH_SPREAD = 0.02
SERVER_CONTEXT = 1024


@dataclass
class Samples:
    """What each side measured, one value per request or llama-bench repetition."""

    depth: int = 0
    threads: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    bench_decode_tps: list[float] = field(default_factory=list)
    bench_prompt_seconds: list[float] = field(default_factory=list)
    profile_means: list[dict[str, Any]] = field(default_factory=list)

    def client(self, key: str) -> list[float]:
        return [r[key] for r in self.requests if r.get(key) is not None]

    def describe(self) -> str:
        return json.dumps(
            {
                "depth": self.depth,
                "threads": self.threads,
                "profile_tokens_per_second": self.client("tokens_per_second"),
                "server_tokens_per_second": self.client("server_tokens_per_second"),
                "llama_bench_tg_tokens_per_second": [round(v, 3) for v in self.bench_decode_tps],
                "profile_ttft_seconds": self.client("ttft_seconds"),
                "server_prompt_seconds": self.client("server_prompt_seconds"),
                "llama_bench_pp_seconds": [round(v, 4) for v in self.bench_prompt_seconds],
            }
        )


def llama_bench(
    binary: Path, model: Path, *, threads: int, prompt: int, generate: int, depth: int, repetitions: int
) -> list[float]:
    """llama-bench's tokens/s of each repetition of one test (`-p` and `-n`, one of them 0, at depth `-d`)."""
    command = [
        str(binary),
        "--model",
        str(model),
        "--threads",
        str(threads),
        "--n-prompt",
        str(prompt),
        "--n-gen",
        str(generate),
        "--n-depth",
        str(depth),
        "--repetitions",
        str(repetitions),
        "--output",
        "json",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}"
    (row,) = json.loads(completed.stdout)
    assert (row["n_prompt"], row["n_gen"], row["n_depth"]) == (prompt, generate, depth), row
    return [float(v) for v in row["samples_ts"]]


@pytest.fixture(scope="module")
def spare_core_server(
    engine_install: EngineInstall, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """One slot, and compute threads that leave a core to the HTTP thread and the client (the module docstring)."""
    threads = max(1, len(os.sched_getaffinity(0)) - 1)
    config = ServerConfig(model_path=smollm2_gguf, ctx_size=SERVER_CONTEXT, parallel=1, threads=threads)
    log = tmp_path_factory.mktemp("truth-server") / "server.log"
    with LlamaServer(engine_install.llama_server, config, log).start(timeout_seconds=120) as server:
        yield server


@pytest.fixture(scope="module")
def samples(spare_core_server: LlamaServer, engine_install: EngineInstall, smollm2_gguf: Path) -> Samples:
    threads = spare_core_server.config.threads
    assert threads
    found = Samples(threads=threads)
    ctx = ProfileContext(
        base_url=spare_core_server.base_url,
        model="smollm2-135m",
        profiles=Profiles.model_validate({"interactive": {"maxTokens": GENERATE, "runs": RUNS}}),
        server_pid=spare_core_server.pid,
        max_context=SERVER_CONTEXT,
        records=lambda _profile, records: found.requests.extend(records),
    )
    bench = functools.partial(llama_bench, engine_install.llama_bench, smollm2_gguf, threads=threads, repetitions=RUNS)
    for _ in range(ROUNDS):
        result = PROFILE_RUNNERS["interactive"](ctx)
        assert result.status in ("passed", "failed"), result.reason
        found.profile_means.append(result.metrics)
        depths = [r["input_tokens"] for r in found.requests]
        found.depth = round(statistics.median(depths))
        assert max(depths) - min(depths) <= DEPTH_SPREAD * found.depth, f"prompts of unequal length: {depths}"
        assert {r["output_tokens"] for r in found.requests} == {GENERATE}
        found.bench_decode_tps += bench(prompt=0, generate=GENERATE, depth=found.depth)
        found.bench_prompt_seconds += [found.depth / tps for tps in bench(prompt=found.depth, generate=0, depth=0)]
    print(found.describe())
    return found


def ratio(measured: float, reference: float) -> float:
    return measured / reference


def fastest_time(values: Sequence[float]) -> float:
    return min(values)


def fastest_rate(values: Sequence[float]) -> float:
    return max(values)


def test_interactive_ttft_agrees_with_llama_bench_prompt_processing(samples: Samples) -> None:
    profile = fastest_time(samples.client("ttft_seconds"))
    bench = fastest_time(samples.bench_prompt_seconds)
    assert ratio(profile, bench) == pytest.approx(1, abs=TOLERANCE), samples.describe()


def test_interactive_tokens_per_second_agrees_with_llama_bench_decoding(samples: Samples) -> None:
    profile = fastest_rate(samples.client("tokens_per_second"))
    bench = fastest_rate(samples.bench_decode_tps)
    assert ratio(profile, bench) == pytest.approx(1, abs=TOLERANCE), samples.describe()


def test_interactive_figures_agree_with_the_servers_own_timings(samples: Samples) -> None:
    by_request = [r for r in samples.requests if r["server_prompt_seconds"] and r["server_tokens_per_second"]]
    assert len(by_request) == ROUNDS * RUNS
    ttft = statistics.median(r["ttft_seconds"] / r["server_prompt_seconds"] for r in by_request)
    tps = statistics.median(r["tokens_per_second"] / r["server_tokens_per_second"] for r in by_request)
    assert ttft == pytest.approx(1, abs=TOLERANCE), samples.describe()
    assert tps == pytest.approx(1, abs=TOLERANCE), samples.describe()
    assert ttft >= 1, "the client's wait includes the server's prompt processing"


def test_profile_reports_the_mean_of_the_requests_it_timed(samples: Samples) -> None:
    """The figures compared above are the profile's own: each round's reported mean is that of its requests."""
    for index, metrics in enumerate(samples.profile_means):
        own = samples.requests[index * RUNS : (index + 1) * RUNS]
        for key in ("tokens_per_second", "ttft_seconds"):
            assert metrics[key] == pytest.approx(statistics.fmean(r[key] for r in own), rel=1e-3), key
