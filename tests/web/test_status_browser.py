"""The status page in a real headless Chromium, offline, with its Content-Security-Policy on:
it loads with no failed request and no console error (a CSP refusal is one), shows the
monitors, and a monitor that goes down turns red at the next refresh, without a reload.
Screenshots go to tests/artifacts/ (status-page*.png)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.test_docs_browser import ARTIFACTS, RENDER_TIMEOUT_S, _failures
from tests.conftest import RunningService
from tests.support.status_page import record, seed

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_status_page_turns_a_monitor_red_in_place_when_it_goes_down(
    browser: Any, service_factory: Callable[..., RunningService]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    svc = service_factory()
    seed(svc.services, "api-health", ["up"] * 5, name="API health", group_name="Core")
    switched = seed(svc.services, "checkout", ["up"] * 5, name="Checkout", group_name="Core")
    seed(svc.services, "blog", ["up", "degraded", "up"], name="Blog", group_name="Content")

    browser.get_log("browser")
    browser.get(f"{svc.url}/?refresh=1")
    WebDriverWait(browser, RENDER_TIMEOUT_S).until(
        lambda d: "Checkout" in d.find_element(By.TAG_NAME, "body").text
    )
    text = browser.find_element(By.TAG_NAME, "body").text
    for shown in ("API health", "Blog", "All systems operational"):
        assert shown in text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "status-page.png"))
    # A marker on the document: a reload would lose it.
    browser.execute_script("document.body.dataset.sameDocument = 'yes'")
    assert browser.execute_script("return window.statusScriptRan") is True
    tile = browser.find_element(By.CSS_SELECTOR, 'li.tile[data-slug="checkout"]')
    assert "state-up" in tile.get_attribute("class")

    record(svc.services, switched, ["down"])

    def red(driver: Any) -> bool:
        found = driver.find_element(By.CSS_SELECTOR, 'li.tile[data-slug="checkout"]')
        return "state-down" in found.get_attribute("class")

    WebDriverWait(browser, RENDER_TIMEOUT_S).until(red)
    tile = browser.find_element(By.CSS_SELECTOR, 'li.tile[data-slug="checkout"]')
    assert tile.find_element(By.CSS_SELECTOR, ".state-text").text == "down"
    colour = browser.execute_script(
        "return getComputedStyle(arguments[0].querySelector('.dot')).backgroundColor", tile
    )
    red_channel, green_channel = (int(v) for v in colour[colour.index("(") + 1 :].split(",")[:2])
    assert red_channel > 150, colour
    assert green_channel < 100, colour
    assert browser.find_element(By.ID, "overall").text == "Some systems are down"
    assert browser.execute_script("return document.body.dataset.sameDocument") == "yes"
    browser.save_screenshot(str(ARTIFACTS / "status-page-down.png"))
    failures = _failures(browser, svc.url)
    assert not failures, "\n".join(failures)


def test_status_page_is_complete_with_javascript_off(
    browser: Any, service_factory: Callable[..., RunningService]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    svc = service_factory()
    seed(svc.services, "api-health", ["up"], name="API health", group_name="Core")
    seed(svc.services, "checkout", ["down"], name="Checkout", group_name="Core")
    # The page's own scripts off (the driver's still work): what a no-JS visitor sees.
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get_log("browser")
        browser.get(f"{svc.url}/")
        WebDriverWait(browser, RENDER_TIMEOUT_S).until(
            lambda d: "Checkout" in d.find_element(By.TAG_NAME, "body").text
        )
        ran = browser.execute_script("return typeof window.statusScriptRan")
        tile = browser.find_element(By.CSS_SELECTOR, 'li.tile[data-slug="checkout"]')
        assert "state-down" in tile.get_attribute("class")
        assert "Some systems are down" in browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(ARTIFACTS / "status-page-no-js.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    assert ran == "undefined"
