"""The admin page in a real headless Chromium (selenium), with a screenshot check.

Debian's ``chromium`` and ``chromedriver`` are used as installed (both paths
are given, so selenium downloads nothing); ``.ci/run`` installs them where
apt is available. Where no browser exists the test is skipped, saying so.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from http_rig import Served, make_key, serve

from credits import Credits
from credits.http import keys
from credits.transport import blocking_executor, drive

pytestmark = pytest.mark.system  # starts a browser

WINDOW = (1280, 1000)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHART_BLUE = (0x1D, 0x4E, 0xD8)


def _browser_paths() -> tuple[str, str]:
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "no headless browser here: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver; .ci/run does where apt exists)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    started = webdriver.Chrome(service=Service(chromedriver), options=options)
    started.set_page_load_timeout(30)
    yield started
    started.quit()


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[Served]:
    with serve(redis_url) as running:
        yield running


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of a PNG screenshot (8-bit, no interlace), by hand."""
    assert data.startswith(PNG_SIGNATURE)
    offset, chunks, header = len(PNG_SIGNATURE), [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        rows.append(
            bytes(line)
            if channels == 3
            else bytes(b for j in range(0, stride, 4) for b in line[j : j + 3])
        )
        previous = line
    return width, height, rows


def test_an_operator_finds_a_user_and_releases_a_hold(
    driver: Any, served: Served, redis_url: str, user_id: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    with Credits(redis_url) as client:
        token = make_key(client, "admin", "browser-test")
        try:
            client.add(user_id, 2000, "purchase", {"order": "ord_1"})
            for _ in range(5):
                client.deduct(user_id, 75, "canvas_generation_complex")
            hold = client.reserve(user_id, 300, "video_generation", ttl=900)

            driver.get(f"{served.base_url}/admin")
            assert driver.current_url.endswith("/admin/login")
            driver.find_element(By.ID, "key").send_keys(token)
            driver.find_element(By.ID, "sign-in").click()
            driver.find_element(By.ID, "user").send_keys(user_id)
            driver.find_element(By.ID, "find").click()

            assert driver.find_element(By.ID, "user-id").text == user_id
            assert driver.find_element(By.ID, "balance").text == "1,325"
            assert driver.find_element(By.ID, "held").text == "300"
            chart = driver.find_element(By.ID, "balance-chart")
            assert chart.size["width"] > 300 and chart.size["height"] > 100
            rows = driver.find_elements(By.CSS_SELECTOR, "#history tr")
            assert len(rows) == 1 + 7  # header + add, 5 deducts, reserve

            shot = tmp_path / "admin-user.png"
            assert driver.save_screenshot(str(shot))
            page = shot.read_bytes()
            width, height = struct.unpack(">II", page[16:24])
            assert width >= 800 and height >= 600
            assert len(page) > 30_000, "the screenshot is (nearly) blank"
            _, _, pixels = png_pixels(chart.screenshot_as_png)
            colours = {row[i : i + 3] for row in pixels for i in range(0, len(row), 3)}
            assert len(colours) > 10, "the chart is (nearly) blank"
            assert any(bytes(CHART_BLUE) in row for row in pixels), "no balance line drawn"

            driver.find_element(By.CSS_SELECTOR, "button.release").click()
            assert "Released" in driver.find_element(By.ID, "notice").text
            assert driver.find_element(By.ID, "held").text == "0"
            assert client.get_reservation(hold.id).status == "released"
            assert driver.current_url.startswith(
                f"{served.base_url}/admin/users/{quote(user_id, safe='')}"
            )
        finally:
            key_id = keys.key_id_of(token)
            assert key_id is not None
            drive(keys.revoke_key(key_id), blocking_executor(client.redis))
