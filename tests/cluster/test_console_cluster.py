"""The console's cluster pages in headless Chromium, against a cluster-mode gateway on the kind cluster.

The operator (a process of this machine, as its own ServiceAccount) runs the smallest BenchmarkMatrix, one
cell of the bundled model, to completion in containers on the kind node and stores its report in a ConfigMap; the
gateway runs as its own process under the gateway's ServiceAccount (exactly `GATEWAY_RULES`, so a missing
verb fails these tests); the install form creates a ModelInstall that the operator installs and serves.
Hugging Face downloads point at a loopback port where nothing listens (the pod's own loopback): the one hf
install (the `<script>` file name) fails without leaving the machine. One cluster, one matrix.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from kubeinfer.bench.recommend import cell_rating
from kubeinfer.bench.report.html_report import charts
from kubeinfer.resources.benchmark_matrix import CellResult
from kubeinfer.resources.names import PROJECT_LABEL
from testbed.browser import signed_in_page
from testbed.kind import KindCluster
from testbed.namespace_env import NamespaceEnv, namespace_env
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(2400)
expect.set_options(timeout=30_000)

NAMESPACE = "kubeinfer-console-test"
KEY_A, KEY_B = "sk-cluster-a", "sk-cluster-b"
MATRIX = Path(__file__).parents[2] / "hack" / "screenshots" / "matrix.yaml"
MATRIX_NAME = "console-cluster"
#: The bundled model's own name, so the install lands on the cache entry the other tests share.
INSTALL = "smollm2-135m"
#: Its hf source fails (nothing listens at NO_HUB); its empty cache folder is removed afterwards.
SCRIPT_INSTALL = "script-file"
#: Where the operator sends Hugging Face downloads: a loopback port with nothing listening.
NO_HUB = "http://127.0.0.1:9"
GOOD_COLOURS = {"excellent": "rgb(26, 127, 55)", "good": "rgb(74, 194, 107)", "acceptable": "rgb(212, 167, 44)"}
RATING_COLOURS = GOOD_COLOURS | {"poor": "rgb(225, 111, 36)", "failed": "rgb(207, 34, 46)"}


def matrix_manifest() -> str:
    """hack/screenshots/matrix.yaml cut to one cell (Q4_1, interactive), labelled as project A's, one thread (a
    cell's CPU request is its thread count; the kind node has about one CPU left next to its control plane)."""
    data = yaml.safe_load(MATRIX.read_text())
    data["spec"]["engine"]["threads"] = 1
    data["metadata"] = {"name": MATRIX_NAME, "labels": {PROJECT_LABEL: "projectA"}}
    model = data["spec"]["models"][0]
    model["files"] = {"Q4_1": model["files"]["Q4_1"]}
    return yaml.safe_dump(data)


@pytest.fixture(scope="module")
def env(
    kube_cluster: KindCluster,
    cluster_models_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NamespaceEnv]:
    work = tmp_path_factory.mktemp("console-cluster")
    try:
        with namespace_env(
            kube_cluster,
            NAMESPACE,
            cluster_models_root,
            work,
            operator_env={"KUBEINFER_OPERATOR__HF_ENDPOINT": NO_HUB},
            clean_up=("modelinstalls", "benchmarkmatrices"),
            release_finalizers=True,
        ) as env:
            env.start_gateway(
                NO_HUB,  # no inference here: the pages under test read the cluster
                {"KUBEINFER_GATEWAY__API_KEYS": f"{KEY_A}=projectA,{KEY_B}=projectB"},
                data_dir=work / "data",
            )
            kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=matrix_manifest())  # runs meanwhile
            yield env
    finally:
        shutil.rmtree(cluster_models_root / SCRIPT_INSTALL, ignore_errors=True)


@pytest.fixture(scope="module")
def finished_matrix(env: NamespaceEnv) -> dict[str, Any]:
    """The one-cell matrix (applied with the environment), run by the operator until Completed; its body."""

    def finished() -> dict[str, Any] | None:
        assert env.operator is not None
        assert env.operator.running, "the operator exited"
        body: dict[str, Any] = env.cluster.get_json("benchmarkmatrix", MATRIX_NAME, "-n", NAMESPACE)
        phase = (body.get("status") or {}).get("phase")
        assert phase != "Failed", body["status"]
        return body if phase == "Completed" else None

    return wait_for(finished, timeout=1500, interval=2, what=f"BenchmarkMatrix {MATRIX_NAME} Completed")


@pytest.fixture
def page_a(browser: Browser, env: NamespaceEnv) -> Iterator[Page]:
    page = signed_in_page(browser, env.gateway.url, KEY_A)
    yield page
    page.context.close()


@pytest.fixture
def page_b(browser: Browser, env: NamespaceEnv) -> Iterator[Page]:
    page = signed_in_page(browser, env.gateway.url, KEY_B)
    yield page
    page.context.close()


def installs(env: NamespaceEnv) -> dict[str, dict[str, Any]]:
    items = env.cluster.get_json("modelinstalls", "-n", NAMESPACE)["items"]
    return {item["metadata"]["name"]: item for item in items}


def submit_install(page: Page, **fields: str) -> int:
    """Fill the install form (other fields left as they are) and submit it; the answer's HTTP status."""
    page.goto("/ui/models")
    form = page.get_by_test_id("install-form")
    for name, value in fields.items():
        field = form.locator(f'[name="{name}"]')
        if name == "source":
            field.select_option(value)
        else:
            field.fill(value)
    with page.expect_response("**/ui/models/install") as answer:
        form.get_by_role("button", name="Install").click()
    return answer.value.status


#: Upper bound for the operator to install and serve the model; never a measured duration.
INSTALL_WAIT_MS = 600_000


@pytest.fixture(scope="module")
def installed(browser: Browser, env: NamespaceEnv) -> dict[str, Any]:
    """A ModelInstall created through project A's install form, installed and served by the operator."""
    page = signed_in_page(browser, env.gateway.url, KEY_A)
    status = submit_install(
        page, name=INSTALL, source="pypi", location="smollm2-135m", quantization="Q4_1", replicas="1"
    )
    assert status == 303  # to the models page
    expect(page.get_by_test_id("install-created")).to_contain_text(INSTALL)
    row = page.locator(f'tr[data-install="{INSTALL}"]')
    # the phase changes on the page loaded above (no reload: the marker would be gone), each phase recorded
    page.evaluate(
        """(name) => {
            window.consoleLoaded = true;
            const badge = document.querySelector(`tr[data-install="${name}"] [data-field="phase"]`);
            window.phasesSeen = [badge.textContent];
            new MutationObserver(() => window.phasesSeen.push(badge.textContent))
                .observe(badge, { childList: true, characterData: true, subtree: true });
        }""",
        INSTALL,
    )
    page.wait_for_function(
        """(name) => window.consoleLoaded === true && ["Ready", "Failed"].includes(
            document.querySelector(`tr[data-install="${name}"] [data-field="phase"]`).textContent)""",
        arg=INSTALL,
        timeout=INSTALL_WAIT_MS,
    )
    shown = row.locator('[data-field="phase"]').inner_text()
    seen = page.evaluate("window.phasesSeen")
    assert seen[-1] == shown
    assert len(set(seen)) > 1, seen  # the page showed the install's phase change without a reload
    body = installs(env)[INSTALL]
    assert shown == "Ready", body.get("status")
    assert body["metadata"]["labels"][PROJECT_LABEL] == "projectA"
    assert body["spec"]["source"] == {"pypi": "smollm2-135m"}
    endpoint = body["status"]["serving"]["endpoints"][0]
    expect(row.locator('[data-field="serving"]')).to_contain_text("1/1 ready")
    expect(row.locator('[data-field="serving"]')).to_contain_text(endpoint)
    expect(row).to_contain_text("MiB")
    expect(row).to_contain_text("projectA")
    page.context.close()
    return body


# --- benchmark matrices -------------------------------------------------------------------------------------


def test_cluster_matrix_lists_and_shows_its_cell_grid_and_report(page_a: Page, finished_matrix: dict[str, Any]) -> None:
    status = finished_matrix["status"]
    cells = [CellResult.model_validate(cell) for cell in status["cells"]]
    assert len(cells) == 1

    page_a.goto("/ui/matrices")
    row = page_a.get_by_test_id("cluster-matrices").locator(f'tr[data-matrix="{MATRIX_NAME}"]')
    expect(row).to_contain_text("Completed")
    expect(row).to_contain_text("1/1")
    expect(row).to_contain_text("projectA")
    row.get_by_role("link", name=MATRIX_NAME).click()

    expect(page_a.get_by_test_id("matrix-phase")).to_contain_text("Completed")
    grid = page_a.get_by_test_id("cell-grid")
    for cell in cells:
        rating = cell_rating(cell)
        td = grid.locator("tr", has_text=cell.model).locator("td").first
        expect(td).to_have_text(rating or cell.status.value)
        if rating is not None:
            expect(td).to_have_css("background-color", RATING_COLOURS[rating])
    if status.get("best"):
        expect(page_a.get_by_text("Overall best:")).to_contain_text(status["best"])
    expect(page_a.get_by_test_id("charts").locator("figure")).to_have_count(len(charts(cells)))

    with page_a.expect_popup() as popup_info:
        page_a.get_by_test_id("html-report").click()
    popup = popup_info.value
    expect(popup.locator("table.grid")).to_be_visible()
    response = popup.request.get(popup.url)
    assert "sandbox allow-scripts" in response.headers["content-security-policy"]


def test_another_projects_matrix_is_hidden(page_b: Page, finished_matrix: dict[str, Any]) -> None:
    page_b.goto("/ui/matrices")
    expect(page_b.get_by_role("heading", name=f"In the cluster (namespace {NAMESPACE})")).to_be_visible()
    expect(page_b.locator(f'tr[data-matrix="{MATRIX_NAME}"]')).to_have_count(0)
    for path in (f"/ui/cluster/matrices/{MATRIX_NAME}", f"/ui/cluster/matrices/{MATRIX_NAME}/report.html"):
        response = page_b.goto(path)
        assert response is not None
        assert response.status == 404
    expect(page_b.get_by_role("alert")).to_contain_text(f"No such BenchmarkMatrix in namespace {NAMESPACE}")


# --- ModelInstalls ------------------------------------------------------------------------------------------


def test_install_form_creates_a_model_install_the_operator_serves(
    page_a: Page, page_b: Page, installed: dict[str, Any]
) -> None:
    page_a.goto("/ui/models")
    expect(page_a.locator(f'tr[data-install="{INSTALL}"] [data-field="phase"]')).to_have_text("Ready")
    page_b.goto("/ui/models")
    expect(page_b.get_by_test_id("install-form")).to_be_visible()
    expect(page_b.locator(f'tr[data-install="{INSTALL}"]')).to_have_count(0)


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        (
            {"name": "bad-quant", "location": "smollm2-135m", "quantization": "Q9_Z"},
            "quantization",
            "'Q9_Z' is not a known GGUF quantization name",
        ),
        ({"name": "", "location": "smollm2-135m", "quantization": "Q4_1"}, "name", "enter a name for the model"),
        ({"name": "Not_A_Name", "location": "smollm2-135m", "quantization": "Q4_1"}, "name", "use lowercase letters"),
        (
            {"name": "no-sha", "source": "url", "location": "https://127.0.0.1:9/m.gguf", "quantization": "Q4_1"},
            "sha256",
            "enter the file's sha256",
        ),
        (
            {"name": "many", "location": "smollm2-135m", "quantization": "Q4_1", "replicas": "two"},
            "replicas",
            "enter a whole number of server replicas",
        ),
        (
            {"name": INSTALL, "location": "smollm2-135m", "quantization": "Q4_1"},
            "name",
            f"a ModelInstall named {INSTALL} already exists in namespace {NAMESPACE}",
        ),
    ],
    ids=["bad-quantization", "empty-name", "bad-name", "url-without-sha256", "bad-replicas", "duplicate-name"],
)
def test_broken_install_form_says_why_and_creates_nothing(
    page_a: Page, env: NamespaceEnv, installed: dict[str, Any], fields: dict[str, str], where: str, message: str
) -> None:
    before = installs(env)
    assert submit_install(page_a, **fields) == 400
    expect(page_a.locator(f'[data-error="{where}"]')).to_contain_text(message)
    if fields["name"]:
        expect(page_a.get_by_test_id("install-form").locator('[name="name"]')).to_have_value(fields["name"])
    after = installs(env)
    assert set(after) == set(before)
    assert after[INSTALL]["metadata"]["resourceVersion"] == before[INSTALL]["metadata"]["resourceVersion"]


def test_cross_site_install_post_is_rejected(
    page_a: Page, env: NamespaceEnv, attacker_site: tuple[str, list[bytes]]
) -> None:
    site, pages = attacker_site
    target = f"{env.gateway.url}/ui/models/install"
    fields = {"csrf_token": "guessed", "name": "forged", "location": "smollm2-135m", "quantization": "Q4_1"}
    inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
    pages.append(
        f'<form id="f" method="post" action="{target}">{inputs}</form>'
        '<script>document.getElementById("f").submit()</script>'.encode()
    )
    with page_a.expect_response(target) as answer:
        page_a.goto(site)
    assert answer.value.status == 403
    expect(page_a.get_by_role("alert")).to_contain_text("Refused: the form was posted from another site")
    response = page_a.request.post(target, form=fields | {"csrf_token": "x" * 43})
    assert response.status == 403
    assert "forged" not in installs(env)


def test_script_in_a_model_install_field_renders_as_text(page_a: Page, env: NamespaceEnv) -> None:
    """An hf file name may hold any text; the page shows it, and no script of it runs."""
    script = "<script>document.title='pwned'</script>.gguf"
    dialogs: list[str] = []
    page_a.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    status = submit_install(
        page_a, name=SCRIPT_INSTALL, source="hf", location="org/repo", file=script, quantization="Q4_1"
    )
    assert status == 303
    assert installs(env)[SCRIPT_INSTALL]["spec"]["source"]["hf"]["file"] == script
    row = page_a.locator(f'tr[data-install="{SCRIPT_INSTALL}"]')
    expect(row.locator("code").first).to_have_text(f"hf:org/repo/{script}")
    assert page_a.title() == "Models · kubeinfer"
    assert row.locator("script").count() == 0
    assert dialogs == []
