import base64
import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pipeline import PipelineError, paths
from pipeline.report import html_page, markdown, plots
from tests.test_markdown import small_results
from tests.test_plots import RED, solid

PROJECT = Path(__file__).resolve().parents[1]
SCREENSHOT = PROJECT / "reports" / "html_report_test.png"  # the page as the test saw it, to look at (git ignores it)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                    "(Debian: apt-get install chromium; .ci/run installs it)")
# Run in the page once it has loaded: what the test reads back from the DOM that Chromium dumps.
PROBE = """<script>
addEventListener("load", () => {
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    images: [...document.images].map(image => ({alt: image.alt, width: image.naturalWidth})),
    tables: [...document.querySelectorAll("table")].map(table => table.rows[0].textContent.trim()),
    order: [...document.querySelectorAll("h1, h2, table, img")].map(element => element.tagName),
    height: document.documentElement.scrollHeight});
  document.body.append(probe);
});
</script>
"""


def chromium(page, scratch, *options):
    """Run headless Chromium on a page file; the network is cut off, so only what the page holds can load."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={scratch}",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000", *options, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def opened(page, screenshot=None, width=1280):
    """What Chromium shows of `page`: each image's natural width (0: it did not load), the tables' first rows,
    the order of headings, tables and images, and the page's height; with `screenshot`, the whole page as PNG."""
    with tempfile.TemporaryDirectory() as scratch:  # Chromium's profile and the probed copy, away from the page
        probed = Path(scratch) / "probed.html"
        probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        dumped = chromium(probed, scratch, "--dump-dom", f"--window-size={width},1000")  # height depends on width
        found = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dumped, re.S).group(1)))
        if screenshot:
            chromium(page, scratch, f"--screenshot={Path(screenshot).resolve()}",
                     f"--window-size={width},{found['height']}")
    return found


def page_with_figure(folder, markdown):
    folder.mkdir(exist_ok=True)
    plots.augmentation_preview([(solid(RED), "image", [])], "a figure", folder / "figure.png")
    (folder / "report.md").write_text(markdown)
    return html_page.write(folder / "report.md", folder / "report.html", "a report")


def test_the_page_holds_its_figures_and_fetches_nothing(tmp_path):
    page = page_with_figure(tmp_path / "reports", "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![fig](figure.png)\n")
    text = page.read_text()
    source = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="fig"', text).group(1)
    assert base64.b64decode(source) == (tmp_path / "reports/figure.png").read_bytes()
    assert "<table>" in text and "<th>a</th>" in text
    assert not re.search(r"(src|href)=\"(?!data:)|<link|<script|@import|url\(", text)


def test_a_figure_named_beyond_ascii_is_found(tmp_path):
    page_with_figure(tmp_path / "reports", "")
    (tmp_path / "reports/figure.png").rename(tmp_path / "reports/curve_été.png")
    (tmp_path / "reports/report.md").write_text("![curve](curve_été.png)\n")
    text = html_page.write(tmp_path / "reports/report.md", tmp_path / "page.html", "a report").read_text()
    assert '<img src="data:image/png;base64,' in text


def test_a_figure_the_report_lacks_is_an_error_naming_it(tmp_path):
    with pytest.raises(PipelineError, match="shows .*curve_x.png, which is missing: run `dvc repro`"):
        page_with_figure(tmp_path / "reports", "![curve](curve_x.png)\n")


def test_names_in_the_report_stay_text_and_lists_follow_their_line(tmp_path):
    text = page_with_figure(tmp_path / "reports", "Copies: 1\n- `a<b>.png` (train)\n- <i>c</i>\n").read_text()
    assert "<li><code>a&lt;b&gt;.png</code> (train)</li>" in text and "&lt;i&gt;c&lt;/i&gt;" in text


@needs_chromium
def test_the_probe_sees_an_image_that_did_not_load(tmp_path):
    """The check below can fail: a broken image and one from the network both have no width."""
    page = page_with_figure(tmp_path / "reports", "![fig](figure.png)\n")
    page.write_text(page.read_text().replace("</body>", '<img alt="broken" src="data:image/png;base64,iVBORw0KGgo">'
                                             '<img alt="network" src="http://example.com/x.png"></body>'))
    widths = {image["alt"]: image["width"] for image in opened(page)["images"]}
    assert widths == {"fig": 1 * 170, "broken": 0, "network": 0}  # the figure at its own size: one 1.7-inch cell


@needs_chromium
def test_a_report_page_opens_with_the_comparison_first_and_every_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    markdown.write(*small_results(tmp_path))
    page = html_page.write(paths.REPORTS / "report.md", paths.REPORTS / "report.html", "small report")
    screenshot = paths.REPORTS / "report.png"
    found = opened(page, screenshot)
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", (paths.REPORTS / "report.md").read_text())
    assert len(found["images"]) == len(figures) >= 6
    assert all(image["width"] > 0 for image in found["images"]), found["images"]
    assert found["order"][:3] == ["H1", "TABLE", "H2"]  # the comparison table comes first
    assert "CV accuracy" in found["tables"][0] and "held-out accuracy" in found["tables"][0]
    assert "recall" in found["tables"][1]
    assert screenshot.stat().st_size > 50_000
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copy(screenshot, SCREENSHOT)
