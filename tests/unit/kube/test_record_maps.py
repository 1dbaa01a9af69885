"""A cluster cell's per-request records in ConfigMaps: packed, split into parts, put back together.

The measure Job writes these bodies to the API server and `kubeinfer bench report` reads them back; the
end-to-end path on a real cluster is asserted in tests/cluster/kind/test_kind_quickstart.py. Here: the
parts' sizes, a rerun over an earlier run's parts, a Job stopped while writing, and damaged parts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.bench.load.records import pack_records, read_records, unpack_records, write_cell_records
from kubeinfer.kube.record_maps import MAX_PARTS, PART_BYTES, RecordsTooLarge, assemble, record_maps

OWNER = {"apiVersion": "kubeinfer.dev/v1alpha1", "kind": "BenchmarkMatrix", "name": "q", "uid": "u-1"}
CONFIG_MAP_LIMIT = 1024 * 1024


def request(profile: str, index: int) -> dict[str, Any]:
    return {"profile": profile, "level": "concurrency 1", "conversation": index, "ttft_seconds": 0.1 + index / 1000}


RECORDS = {"interactive": [request("interactive", i) for i in range(5)], "batch": [request("batch", 0)]}


def test_packed_records_come_back_by_profile_in_order() -> None:
    assert unpack_records(pack_records(RECORDS), "test") == RECORDS


def test_a_record_takes_the_profile_it_was_handed_under() -> None:
    unpacked = unpack_records(pack_records({"batch": [request("interactive", 1)]}), "test")
    assert list(unpacked) == ["batch"]


def test_small_records_fit_one_config_map_owned_by_the_matrix() -> None:
    bodies = record_maps("q-smollm2-q8-0-measure", "q", "smollm2/Q8_0", pack_records(RECORDS), OWNER, "r1")
    assert [b["metadata"]["name"] for b in bodies] == ["q-smollm2-q8-0-measure-requests-0"]
    assert bodies[0]["metadata"]["ownerReferences"] == [OWNER]
    assert bodies[0]["metadata"]["labels"]["kubeinfer.dev/component"] == "requests"
    assembled = assemble(bodies, "q")
    assert assembled.problems == []
    assert unpack_records(assembled.blobs["smollm2/Q8_0"][0], "test") == RECORDS


def test_large_records_split_into_parts_each_under_the_config_map_limit() -> None:
    blob = os.urandom(PART_BYTES * 2 + 1000)
    bodies = record_maps("job", "q", "m/Q4_1", blob, OWNER, "r1")
    assert len(bodies) == 3
    assert all(len(json.dumps(body)) < CONFIG_MAP_LIMIT for body in bodies)
    assert assemble(reversed(bodies), "q").blobs == {"m/Q4_1": [blob]}


def test_records_beyond_the_parts_a_cell_may_write_are_refused_with_the_way_out() -> None:
    with pytest.raises(RecordsTooLarge, match=f"more than the {MAX_PARTS} a cell may write; lower requestsPerLevel"):
        record_maps("job", "q", "m/Q4_1", b"x" * (PART_BYTES * MAX_PARTS + 1), OWNER, "r1")


def test_a_rerun_with_fewer_parts_ignores_the_earlier_runs_leftover_part() -> None:
    old = record_maps("job", "q", "m/Q4_1", b"a" * (PART_BYTES * 2 + 1), OWNER, "old")
    new = record_maps("job", "q", "m/Q4_1", b"b" * 10, OWNER, "new")
    stored = {b["metadata"]["name"]: b for b in old} | {b["metadata"]["name"]: b for b in new}
    assert assemble(stored.values(), "q").blobs == {"m/Q4_1": [b"b" * 10]}


def test_a_job_stopped_while_writing_its_parts_is_reported_not_mixed_with_the_earlier_run() -> None:
    old = record_maps("job", "q", "m/Q4_1", b"a" * (PART_BYTES * 2 + 1), OWNER, "old")
    new = record_maps("job", "q", "m/Q4_1", b"b" * (PART_BYTES * 2 + 1), OWNER, "new")
    assembled = assemble([new[0], old[1], old[2]], "q")
    assert assembled.blobs == {}
    assert assembled.problems == [
        "records of m/Q4_1 (Job job): run new has 1 of its 3 parts (job-requests-0); the Job was stopped while "
        "writing them"
    ]


def test_a_missing_first_part_and_a_damaged_part_are_named() -> None:
    bodies = record_maps("job", "q", "m/Q4_1", b"a" * (PART_BYTES + 1), OWNER, "r1")
    assert assemble(bodies[1:], "q").problems == ["records of m/Q4_1 (Job job): part 0 is missing"]
    bodies[0]["binaryData"]["requests.jsonl.gz.part"] = "not base64!"
    assert assemble(bodies[:1], "q").problems == ["ConfigMap job-requests-0: requests.jsonl.gz.part is not base64"]


def test_parts_of_another_matrix_with_the_same_label_are_left_out() -> None:
    mine = record_maps("a-b-job", "a-b", "m/Q4_1", pack_records(RECORDS), OWNER, "r1")
    other = record_maps("a.b-job", "a.b", "m/Q4_1", pack_records({"batch": RECORDS["batch"]}), OWNER, "r1")
    assert mine[0]["metadata"]["labels"] == other[0]["metadata"]["labels"]
    assert assemble([*mine, *other], "a-b").blobs == {"m/Q4_1": [pack_records(RECORDS)]}


def test_cell_records_are_written_as_bench_run_names_them(tmp_path: Path) -> None:
    written = write_cell_records(tmp_path, "smollm2-135m/Q8_0", [pack_records(RECORDS)])
    assert written == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "smollm2-135m_Q8_0_batch.jsonl",
        "smollm2-135m_Q8_0_interactive.jsonl",
    ]
    assert read_records(tmp_path / "smollm2-135m_Q8_0_interactive.jsonl") == RECORDS["interactive"]


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"plain text", "not a gzip-compressed JSON Lines stream"),
        (pack_records(RECORDS)[:-10], "not a gzip-compressed JSON Lines stream"),
    ],
    ids=["not gzip", "cut short"],
)
def test_damaged_records_name_the_cell_and_write_nothing(tmp_path: Path, blob: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"the request records of m/Q4_1: {message}"):
        write_cell_records(tmp_path / "requests", "m/Q4_1", [blob])
    assert not (tmp_path / "requests").exists()


def test_a_line_that_is_not_a_record_is_named() -> None:
    import gzip

    with pytest.raises(ValueError, match="line 2: a record must be a JSON object with a profile"):
        unpack_records(gzip.compress(b'{"profile":"a"}\n[1]\n'), "x")
