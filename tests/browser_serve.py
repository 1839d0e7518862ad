#!/usr/bin/python3
"""The page rnnkit-serve answers GET / with, in a real browser (Debian's headless Chromium,
driven by python3-selenium): the model selector is filled from /v1/models; a tagger's entities
are highlighted inline; a classifier's classes are bars; a language model's text grows while it
streams; a translator's attention is a heatmap whose rows sum to 1. Saves a screenshot of each.
With an API key (a server with --api-key-file), the page first asks for it: a wrong key is
refused, the right one fills the selector, and every call after it carries it.
usage: browser_serve.py BASE_URL OUT_DIR [API_KEY]"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

base, out = sys.argv[1], sys.argv[2]
key = sys.argv[3] if len(sys.argv) > 3 else ""
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--window-size=1000,700"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 30)
try:
    driver.get(base + "/")
    if key:
        wait.until(lambda d: d.find_element(By.ID, "keyrow").is_displayed())
        assert "needs an API key" in driver.find_element(By.ID, "out").text
        for attempt, want in [("wrong-key", "not this server's"), (key, None)]:
            box = driver.find_element(By.ID, "apikey")
            box.clear()
            box.send_keys(attempt)
            driver.find_element(By.ID, "usekey").click()
            if want:
                wait.until(lambda d: want in d.find_element(By.ID, "out").text)
        print("api key: asked for, a wrong one refused, the right one used")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 4)
    names = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#model option")]
    assert sorted(names) == ["char", "dates", "ner", "sst"], names
    select = Select(driver.find_element(By.ID, "model"))

    def run(model, text):
        select.select_by_value(model)
        box = driver.find_element(By.ID, "text")
        box.clear()
        box.send_keys(text)
        driver.find_element(By.ID, "run").click()

    # The tagger: highlighted entities, each with its type and a confidence.
    run("ner", "We met Dara Smith in Lima with Hiro .")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "mark.entity"))
    marks = driver.find_elements(By.CSS_SELECTOR, "mark.entity")
    types = sorted({m.get_attribute("data-type") for m in marks})
    assert "PER" in types, types
    for m in marks:
        conf = float(m.find_element(By.CSS_SELECTOR, ".conf").text)
        assert 0 < conf <= 1, conf
    tagged = driver.find_element(By.CSS_SELECTOR, ".tagged").text
    assert "Dara Smith" in tagged and "Lima" in tagged, tagged
    driver.save_screenshot(out + "/page_ner.png")
    print("ner:", [(m.text.replace("\n", " ")) for m in marks])

    # The classifier: one bar per class, widths summing to 100%.
    run("sst", "great food and lovely staff")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".bar-row")) == 2)
    values = [float(v.text.rstrip("%")) for v in driver.find_elements(By.CSS_SELECTOR, ".bar-value")]
    assert abs(sum(values) - 100) < 0.5, values
    driver.save_screenshot(out + "/page_sst.png")
    print("sst:", values)

    # The translator: the translation, and its attention as a heatmap: a header row of the
    # source's tokens and </s>, then one row per written token and </s>, each cell shaded by its
    # weight, the weights of a row summing to 1.
    run("dates", "3 mar 1998")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#attention tr"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#attention tr")
    header = [th.text for th in rows[0].find_elements(By.CSS_SELECTOR, "th")][1:]
    assert len(header) == len("3 mar 1998") + 1 and header[-1] == "</s>", header  # characters
    translation = driver.find_element(By.ID, "translation").text
    assert len(rows) - 1 >= 1, "no row per written token"
    for row in rows[1:]:
        cells = row.find_elements(By.CSS_SELECTOR, "td")
        assert len(cells) == len(header), (len(cells), len(header))
        weights = [float(c.get_attribute("title")) for c in cells]
        assert abs(sum(weights) - 1) < 0.01, weights
        assert all("rgba(30, 90, 200" in c.get_attribute("style") for c in cells)
    driver.save_screenshot(out + "/page_translate.png")
    print(f"translate: '{translation}', a heatmap of {len(rows) - 1} x {len(header)}")

    # The language model: the text grows while it streams. A MutationObserver records the text's
    # length at every change, so that the growth is seen however fast the model is.
    select.select_by_value("char")
    maxtokens = driver.find_element(By.ID, "maxtokens")
    maxtokens.clear()
    maxtokens.send_keys("2000")
    driver.execute_script("""
        window.__lengths = [];
        new MutationObserver(() => {
          const s = document.getElementById("stream");
          if (s) window.__lengths.push(s.textContent.length);
        }).observe(document.getElementById("out"), {childList: true, subtree: true, characterData: true});
    """)
    run("char", "ROMEO:")
    wait.until(lambda d: "tokens" in d.find_element(By.ID, "status").text)
    lengths = driver.execute_script("return window.__lengths;")
    steps = sorted(set(lengths))
    assert len(steps) > 20, f"the text appeared in {len(steps)} steps, not as a stream: {steps[:10]}"
    assert steps == sorted(steps) and lengths[-1] == max(lengths), "the text only grew"
    driver.save_screenshot(out + "/page_lm.png")
    print(f"lm: the text grew in {len(steps)} steps to {lengths[-1]} characters")
finally:
    driver.quit()
print("browser_serve: ok")
