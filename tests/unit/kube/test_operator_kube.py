"""The operator's API idioms that need no cluster: poll back-off and the shared client's retries."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeinfer.kube.client import api_client as shared_api_client
from kubeinfer.kube.poll import PollInterval


def test_poll_interval_grows_by_half_to_the_cap_and_resets() -> None:
    wait = PollInterval(1.0, 4.0)
    assert [wait() for _ in range(6)] == [1.0, 1.5, 2.25, 3.375, 4.0, 4.0]
    wait.reset()
    assert wait() == 1.0


def test_cap_below_first_wait_keeps_the_first() -> None:
    wait = PollInterval(2.0, 1.0)
    assert [wait(), wait()] == [2.0, 2.0]


def test_shared_client_retries_throttling_and_server_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    # The client reads KUBECONFIG when it is imported, so point its default location at this file.
    from kubernetes import config
    from kubernetes.config import kube_config

    monkeypatch.setattr(config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))
    shared_api_client.cache_clear()
    try:
        api = shared_api_client()
        assert api is shared_api_client()
        retries = api.configuration.retries
        assert 429 in retries.status_forcelist
        assert retries.respect_retry_after_header
    finally:
        shared_api_client.cache_clear()
