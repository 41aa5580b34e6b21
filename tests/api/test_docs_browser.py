"""/docs and /redoc in a real headless Chromium with no way out of this machine: the operations
must be rendered, every request the page makes must succeed, and the console must show no
error (a script or style refused by the Content-Security-Policy is one). On a service whose
API needs keys, the Authorize button takes a key and "Try it out" then gets 200, not 401.

Needs Debian's chromium and chromium-driver (`apt-get install -y chromium chromium-driver`;
.ci/run installs them) and the dev extra's selenium. Without them the test is skipped, except
in CI (CI=true), where it fails. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningService, make_settings
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Debian's packages put them in /usr/bin; PATH is searched first.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
RENDER_TIMEOUT_S = 60.0
# Offline: every name fails to resolve, so nothing (fonts, a CDN) can be fetched from outside.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,1600",
)


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is missing"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is missing"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        how = "apt-get install -y chromium chromium-driver; .venv/bin/pip install -e '.[dev]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}; CI must run the browser test ({how})")
        pytest.skip(f"{missing}: to run it, {how}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must download nothing
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningService]:
    svc = RunningService(make_settings(port=free_port()))
    yield svc
    svc.close()


def _render(browser: Any, url: str, expected: list[str], screenshot: str) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what an earlier page logged
    browser.get(url)

    def rendered(driver: Any) -> bool:
        text = driver.find_element(By.TAG_NAME, "body").text
        return all(item in text for item in expected)

    try:
        WebDriverWait(browser, RENDER_TIMEOUT_S).until(rendered)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / screenshot))
    text: str = browser.find_element(By.TAG_NAME, "body").text
    return text


def _failures(browser: Any, base_url: str) -> list[str]:
    """Console errors, and requests that failed or went anywhere but the service."""
    entries = browser.execute_script(
        "return performance.getEntriesByType('navigation')"
        ".concat(performance.getEntriesByType('resource'))"
        ".map(e => [e.name, e.responseStatus])"
    )
    failures = [f"{name}: {status}" for name, status in entries if status != 200]
    failures += [f"outside: {name}" for name, _ in entries if not name.startswith(base_url)]
    failures += [
        f"console: {entry['message']}"
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE"
    ]
    return failures


def test_swagger_ui_renders_the_operations_offline(browser: Any, shared: RunningService) -> None:
    text = _render(
        browser,
        f"{shared.url}/docs",
        ["/v1/jobs", "Submit URLs to check", "/v1/check", "/v1/status"],
        "docs-swagger.png",
    )

    assert "Failed to load API definition" not in text
    # Opening an operation renders much more of the UI, all under the page's policy.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.ID, "operations-jobs-create_job_v1_jobs_post").click()
    WebDriverWait(browser, RENDER_TIMEOUT_S).until(
        lambda d: "Request body" in d.find_element(By.TAG_NAME, "body").text
    )
    browser.save_screenshot(str(ARTIFACTS / "docs-swagger-operation.png"))
    failures = _failures(browser, shared.url)
    assert not failures, "\n".join(failures)


def test_redoc_renders_the_operations_offline(browser: Any, shared: RunningService) -> None:
    _render(
        browser,
        f"{shared.url}/redoc",
        ["Submit URLs to check", "Service status and counters"],
        "docs-redoc.png",
    )

    failures = _failures(browser, shared.url)
    assert not failures, "\n".join(failures)


STATUS_OPERATION = "operations-status-status_v1_status_get"


def _execute_status(browser: Any) -> str:
    """Open GET /v1/status, "Try it out", Execute: the live response's status code."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, RENDER_TIMEOUT_S)
    operation = f"#{STATUS_OPERATION}"
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .opblock-summary")))
    browser.find_element(By.CSS_SELECTOR, f"{operation} .opblock-summary").click()
    try_out = (By.CSS_SELECTOR, f"{operation} .try-out__btn")
    wait.until(ec.element_to_be_clickable(try_out)).click()
    execute = (By.CSS_SELECTOR, f"{operation} .btn.execute")
    wait.until(ec.element_to_be_clickable(execute)).click()
    # The documented responses have .response-col_status cells too: only the live one counts.
    live = (By.CSS_SELECTOR, f"{operation} .live-responses-table .response .response-col_status")
    wait.until(lambda d: d.find_element(*live).text.strip() != "")
    status: str = browser.find_element(*live).text.strip()
    return status


def test_the_authorize_button_sends_the_key_and_try_it_out_gets_200(
    browser: Any, service_factory: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.auth.support import ADMIN_KEY, locked_service

    svc = locked_service(service_factory, tmp_path)
    wait = WebDriverWait(browser, RENDER_TIMEOUT_S)

    # Without a key the API answers 401, and the page shows it.
    _render(browser, f"{svc.url}/docs", ["/v1/status"], "docs-unauthorized.png")
    assert _execute_status(browser).startswith("401")

    # A fresh page (no key kept), then Authorize with the admin key in the bearer field.
    _render(browser, f"{svc.url}/docs", ["/v1/status"], "docs-authorize.png")
    authorize = (By.CSS_SELECTOR, ".auth-wrapper .btn.authorize")
    wait.until(ec.element_to_be_clickable(authorize)).click()
    field = wait.until(ec.visibility_of_element_located((By.ID, "auth-bearer-value")))
    field.send_keys(ADMIN_KEY)
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn.authorize").click()
    done = (By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done")
    wait.until(ec.element_to_be_clickable(done)).click()
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux")))
    assert "locked" in browser.find_element(*authorize).get_attribute("class").split()

    status = _execute_status(browser)
    browser.save_screenshot(str(ARTIFACTS / "docs-authorized.png"))
    assert status.startswith("200"), status
