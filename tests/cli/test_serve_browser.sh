# imgsearch serve: the search page in a real browser (Debian's chromium, driven by
# chromium-driver through python3-selenium): drop a photo on the page, see the grid,
# click a result, mark two and refine, share an id search by URL, use the keyboard, fit
# a phone-width window, no console errors. SERVE_SCREENSHOT=FILE keeps a screenshot
# (docs/serve-page.png is made that way).
# fixture: corel
source "$(dirname "$0")/lib.sh"
kill_serve_on_exit
command -v chromedriver >/dev/null || fail "chromedriver is missing (apt-get install chromium-driver)"

start_serve -i "$COREL_INDEX" --threads 1
export SERVE_URL COREL WORK
"$PYTHON" - <<'EOF'
import base64, os, shutil, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

url, corel, work = os.environ["SERVE_URL"], os.environ["COREL"], os.environ["WORK"]
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
            "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))

def grid():
    return driver.find_elements(By.CSS_SELECTOR, "#grid li")

def thumbs_loaded(_):
    return all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
               for img in driver.find_elements(By.CSS_SELECTOR, "#grid img"))

def drop(name, data, mime):
    # A real DataTransfer holding a real File, dispatched as the browser does on a drop.
    driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], arguments[1], {type: arguments[2]}));
        for (const type of ["dragenter", "dragover", "drop"])
          document.body.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
    """, base64.b64encode(data).decode(), name, mime)

try:
    driver.get(url)
    assert driver.title == "imgsearch"
    assert not driver.find_element(By.ID, "drop").is_displayed()
    assert not driver.find_element(By.ID, "query").is_displayed()

    # Drop buses/300.jpg: the grid fills, itself first.
    drop("300.jpg", open(f"{corel}/buses/300.jpg", "rb").read(), "image/jpeg")
    wait.until(lambda d: len(grid()) == 9)
    wait.until(thumbs_loaded)
    first = grid()[0]
    assert first.find_element(By.CLASS_NAME, "name").text == "300.jpg", first.text
    assert first.find_element(By.CLASS_NAME, "rank").text == "#1"
    assert first.find_element(By.CLASS_NAME, "score").text == "1.000"
    assert sum("/buses/" in li.find_element(By.CLASS_NAME, "name").get_attribute("title") for li in grid()) >= 8
    assert driver.find_element(By.ID, "query-image").get_attribute("src").startswith("blob:")
    assert not driver.find_element(By.ID, "drop").is_displayed()  # the overlay is gone after the drop
    assert not driver.find_element(By.ID, "token-form").is_displayed()  # no token asked for
    assert "results in" in driver.find_element(By.ID, "status").text

    # Click the third result: an id search, recorded in the URL.
    third_id = grid()[2].get_attribute("data-id")
    grid()[2].find_element(By.CLASS_NAME, "open").click()
    wait.until(lambda d: d.current_url.endswith(f"?id={third_id}&k=9"))
    wait.until(lambda d: grid() and grid()[0].get_attribute("data-id") == third_id)
    wait.until(thumbs_loaded)

    # Mark two good and one bad, refine: the bad one is gone.
    refine = driver.find_element(By.ID, "refine")
    assert not refine.is_enabled()
    good = [grid()[1], grid()[2]]
    bad = grid()[8]
    bad_id = bad.get_attribute("data-id")
    for li in good:
        li.find_element(By.CLASS_NAME, "mark-good").click()
    bad.find_element(By.CLASS_NAME, "mark-bad").click()
    assert good[0].get_attribute("class") == "good" and bad.get_attribute("class") == "bad"
    assert good[0].find_element(By.CLASS_NAME, "mark-good").get_attribute("aria-pressed") == "true"
    assert refine.is_enabled()
    refine.click()
    wait.until(lambda d: d.find_element(By.ID, "query-text").text.startswith("Refined: 2 good, 1 bad"))
    ids = [li.get_attribute("data-id") for li in grid()]
    assert len(ids) == 9 and bad_id not in ids, ids
    wait.until(thumbs_loaded)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(f"{work}/page.png")

    # Keyboard: Tab reaches the result buttons; Enter on one searches by it.
    body = driver.find_element(By.TAG_NAME, "body")
    target = grid()[3]
    target_id = target.get_attribute("data-id")
    target.find_element(By.CLASS_NAME, "open").send_keys(Keys.ENTER)
    wait.until(lambda d: d.current_url.endswith(f"?id={target_id}&k=9"))
    tabbable = driver.execute_script("""
        return [...document.querySelectorAll('button, input, [tabindex]')].filter(e => e.tabIndex >= 0 && !e.disabled).length""")
    assert tabbable >= 9 * 3, tabbable

    # Paste from the clipboard, and the file picker.
    driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "image.png", {type: "image/jpeg"}));
        window.dispatchEvent(new ClipboardEvent("paste", {clipboardData: dt, bubbles: true, cancelable: true}));
    """, base64.b64encode(open(f"{corel}/dinosaurs/400.jpg", "rb").read()).decode())
    wait.until(lambda d: grid() and grid()[0].find_element(By.CLASS_NAME, "name").text == "400.jpg")
    driver.find_element(By.ID, "file").send_keys(f"{corel}/horses/700.jpg")
    wait.until(lambda d: grid() and grid()[0].find_element(By.CLASS_NAME, "name").text == "700.jpg")
    assert driver.find_element(By.ID, "query-text").text == "Query: 700.jpg"

    # A shared URL opens the same search; k comes from it too.
    driver.get(url + "?id=5&k=4")
    wait.until(lambda d: len(grid()) == 4 and grid()[0].get_attribute("data-id") == "5")
    assert driver.find_element(By.ID, "k").get_attribute("value") == "4"

    # Phone width: nothing wider than the window.
    driver.set_window_size(390, 844)
    time.sleep(0.3)
    overflow = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, overflow

    # No console errors so far (CSP violations and failed loads would show here).
    logs = driver.get_log("browser")
    errors = [entry for entry in logs if entry["level"] == "SEVERE"]
    assert not errors, errors

    # A broken file: the reason shows inline, the page stays usable.
    drop("broken.jpg", os.urandom(3000), "image/jpeg")
    wait.until(lambda d: "upload: " in d.find_element(By.ID, "error").text)
    assert len(grid()) == 4
finally:
    driver.quit()
print("browser ok")
EOF
stop_serve
"$PYTHON" -c "from PIL import Image; im = Image.open('$WORK/page.png'); assert im.size[0] >= 1000, im.size"

# With a token: the page asks for it once, then searches and fetches thumbnails with it.
start_serve -i "$COREL_INDEX" --threads 1 --token "page-token"
export SERVE_URL
"$PYTHON" - <<'EOF'
import os
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

url = os.environ["SERVE_URL"]
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))
try:
    driver.get(url + "?id=7&k=3")
    wait.until(lambda d: d.find_element(By.ID, "token-form").is_displayed())
    assert "token" in driver.find_element(By.ID, "error").text.lower()
    driver.find_element(By.ID, "token").send_keys("page-token")
    driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid li")) == 3)
    # Thumbnails came through fetch() with the header, shown from blob: URLs (allowed by the CSP).
    wait.until(lambda d: all(d.execute_script("return arguments[0].naturalWidth > 0", i)
                             for i in d.find_elements(By.CSS_SELECTOR, "#grid img")))
    assert all(i.get_attribute("src").startswith("blob:") for i in driver.find_elements(By.CSS_SELECTOR, "#grid img"))
    assert driver.find_element(By.ID, "error").text == ""
    csp = [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not csp, csp
finally:
    driver.quit()
print("browser with token ok")
EOF
stop_serve
if [ -n "${SERVE_SCREENSHOT:-}" ]; then
  "$PYTHON" -c "
from PIL import Image
im = Image.open('$WORK/page.png').convert('RGB')
im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS).quantize(colors=128)
im.save('$SERVE_SCREENSHOT', optimize=True)"
fi
