"""The attention explorer in a real browser: JupyterLab (notebook 03) and the Voila app.

Headless Chromium is Debian's ``chromium`` package, driven by Playwright for Python with
``executable_path`` (no browser download). ``make test`` installs it when run as root; where
it is missing these tests are skipped with a message saying what to install, except under
CI (``CI=true``), where they fail. Screenshots (before and after moving the slider) are saved
under ``$KDAS_RUNS_DIR/artifacts/browser/``.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from kdas_utils.book import build
from kdas_utils.config import REPOSITORY, get_profile, runs_dir

pytestmark = pytest.mark.slow  # each test starts a server and a browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]  # no calls to the closed network
INSTALL_HINT = (
    "install Debian's chromium (`apt-get install chromium`, which `make test` does as root) and "
    "Playwright for Python (`pip install -e '.[dev]'`), or set KDAS_CHROMIUM to a Chromium binary"
)


def _chromium() -> str | None:
    candidates = [os.environ.get("KDAS_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, or a skip (a failure under CI) saying what to install."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        missing = "Playwright for Python" if executable else "a Chromium binary"
        message = f"browser tests need {missing}: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " -- CI must run them", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def quick_teacher():
    """Both pages show the quick profile's teacher: train it (a minute) if no earlier test did."""
    from kdas_utils.runs import train_teacher

    return train_teacher(get_profile("quick")).path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _server(command: list[str], ready_url: str, log: Path, env: dict, timeout: float = 120):
    """Start a server process, wait until ``ready_url`` answers (any HTTP status), stop it afterwards."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[2]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(ready_url, timeout=2)
                break
            except urllib.error.HTTPError:  # an answer, even 403 or 404: the server is up
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{command[2]} did not answer {ready_url} in {timeout} s:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _environment(tmp_path: Path) -> dict:
    """The servers' kernels: quick profile, this checkout, our runs folder, and Jupyter's
    state (settings, workspaces, runtime files) kept in ``tmp_path``."""
    return dict(
        os.environ,
        KDAS_HOME=str(REPO),
        KDAS_PROFILE="quick",
        KDAS_RUNS_DIR=str(runs_dir()),
        MPLBACKEND="agg",
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"),
    )


# The open notebook's kernel is connected and idle (the toolbar's indicator reads idle earlier).
KERNEL_IDLE = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const session = widget && widget.sessionContext && widget.sessionContext.session;
    const kernel = session && session.kernel;
    return Boolean(kernel) && kernel.status === "idle";
}"""


def _artifacts() -> Path:
    folder = runs_dir() / "artifacts" / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def _page(browser, name: str, width: int, height: int):
    """A new page; on failure its screenshot is saved as ``<name>-failure.png``."""
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        yield page
    except Exception:
        path = _artifacts() / f"{name}-failure.png"
        page.screenshot(path=path)
        print(f"screenshot of the failing page: {path}")
        raise
    finally:
        page.close()


def _move_slider_and_compare(page, name: str) -> tuple[bytes, bytes]:
    """Screenshot the explorer's picture, press ArrowRight on its ``frame`` slider, wait for
    the picture to be replaced, screenshot again. Returns both PNGs (also saved as artefacts)."""
    from playwright.sync_api import expect

    picture = page.locator(".widget-image").first
    caption = picture.locator("xpath=following-sibling::*[contains(@class, 'widget-html')]").first  # not a tqdm bar's
    picture.scroll_into_view_if_needed()
    caption_before, source_before = caption.inner_text(), picture.get_attribute("src")
    before = picture.screenshot()
    slider = page.locator(".widget-slider", has_text="frame").first
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    expect(picture).not_to_have_attribute("src", source_before, timeout=60_000)
    expect(caption).not_to_have_text(caption_before, timeout=60_000)
    after = picture.screenshot()
    folder = _artifacts()
    (folder / f"{name}-before.png").write_bytes(before)
    (folder / f"{name}-after.png").write_bytes(after)
    page.screenshot(path=folder / f"{name}-page.png")
    return before, after


def _dismiss_news(page) -> None:
    """JupyterLab asks once whether to fetch Jupyter news; say no so the toast covers nothing."""
    no = page.get_by_role("button", name="No", exact=True)
    try:
        no.click(timeout=3_000)
    except Exception:  # the toast did not appear (or was already answered)
        pass


def test_explorer_in_jupyterlab(browser, quick_teacher, tmp_path):
    """Notebook 03 run in JupyterLab: moving the frame slider redraws the attention map."""
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / "03_attention_maps.ipynb", root)  # the browser may autosave: not our copy
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    with _server(command, f"{base}/api/status?token={token}", tmp_path / "jupyterlab.log", _environment(tmp_path)):
        with _page(browser, "jupyterlab-03", 1400, 1000) as page:
            page.goto(f"{base}/lab/tree/03_attention_maps.ipynb?token={token}")
            page.wait_for_function(KERNEL_IDLE, timeout=120_000)
            _dismiss_news(page)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            error = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']:has-text('Error')"
            page.wait_for_selector(f".jp-OutputArea-output .widget-image, {error}", timeout=600_000)
            assert page.locator(error).count() == 0, page.locator(error).first.inner_text()
            before, after = _move_slider_and_compare(page, "jupyterlab-03")
    assert before != after, "the attention map did not change when the frame slider moved"


def _upload_a_frame(page, name: str, frame: Path) -> str:
    """Upload ``frame`` through the app's FileUpload (its button opens the file chooser) and wait for the
    prediction's caption; returns it. The page is saved as an artefact."""
    from playwright.sync_api import expect

    with page.expect_file_chooser() as chooser:  # ipywidgets keeps its <input type=file> out of the page
        page.locator(".widget-upload").first.click()
    chooser.value.set_files(str(frame))
    caption = page.locator(".widget-html", has_text="max probability").first
    expect(caption).to_be_visible(timeout=120_000)
    picture = caption.locator("xpath=preceding-sibling::*[contains(@class, 'widget-image')]").first
    expect(picture).to_be_visible(timeout=30_000)
    assert picture.bounding_box()["height"] > 100, "the four panels of the prediction were not drawn"
    page.screenshot(path=_artifacts() / f"{name}-upload.png", full_page=True)
    return caption.inner_text()


def test_explorer_as_voila_app(browser, quick_teacher, real_pair, tmp_path):
    """``voila apps/attention_explorer.ipynb``: the app renders the explorer, and it responds; a real
    frame uploaded in the browser comes back with its prediction."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "voila",
        str(REPO / "apps" / "attention_explorer.ipynb"),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
    ]
    base = f"http://127.0.0.1:{port}"
    with _server(command, f"{base}/api/status", tmp_path / "voila.log", _environment(tmp_path)):
        with _page(browser, "voila-app", 1200, 900) as page:
            page.goto(base, timeout=600_000)
            page.wait_for_selector(".widget-image", timeout=600_000)
            assert page.locator(".widget-dropdown select").first.input_value() == "teacher"
            before, after = _move_slider_and_compare(page, "voila-app")
            caption = _upload_a_frame(page, "voila-app", real_pair[0])
    assert before != after, "the Voila app's map did not change when the frame slider moved"
    assert caption.startswith(f"{real_pair[0].name} (") and "threshold 0.5" in caption, caption


def _mathjax_probe(text: str) -> bool:
    """MathJax 2's HTML-CSS output tests how the browser answers a missing web font with
    ``@font-face {font-family: MathJax_Blank; src: url('about:blank')}`` before it loads a STIX-Web
    font a formula needs (bold, large delimiters); Chrome logs that probe as a CORS error. MathJax's
    maintainers call it expected (mathjax/MathJax#926); the formulas still render (the test below
    checks that), so that one message, and no other, is not counted as the page's error."""
    return text.startswith("Access to font at 'about:blank'")


@pytest.mark.after_notebooks
def test_the_book_in_a_browser(browser, tutorial_01, tmp_path):
    """``make book``'s build, opened page by page in Chromium: no console error from the book's own
    files, every image loads, every internal link resolves; each executed lesson shows its figures;
    the search finds the Symmetrical Guiding Module.

    The lessons come as this pytest run executed them: under ``make test`` every notebook has run
    under nbval before this test (``runs/notebooks-tested/``, see the root ``conftest.py``), so every
    lesson page must show a figure; run alone, it has notebook 01 as ``make tutorial`` executes it,
    the other lessons as committed (text outputs only)."""
    slug = REPOSITORY.removeprefix("https://github.com/")
    lessons = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    tested = runs_dir() / "notebooks-tested"  # written by the root conftest.py's hooks
    if all((tested / name).is_file() for name in lessons):
        executed, shown = tested, lessons
    else:
        executed, shown = tutorial_01[0] / "notebooks", ["01_data_preparation.ipynb"]
    book = tmp_path / "book"
    assert build(book, executed=executed).is_file()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(book)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = sorted(p.relative_to(book).as_posix() for p in book.rglob("*.html") if not p.parts[-2].startswith("_"))
    pages = [p for p in pages if not p.startswith(("_", "genindex", "py-modindex"))]
    assert {"index.html", "docs/index.html", "docs/results.html", "notebooks/04_sgm_covariance.html"} <= set(pages)
    for name in pages:  # a page without an icon makes the browser ask for /favicon.ico (a 404)
        icon = re.search(r'<link rel="icon" href="([^"]+)"', (book / name).read_text())
        assert icon and (book / name).parent.joinpath(icon[1]).resolve().is_file(), name
    try:
        with _page(browser, "book", 1300, 900) as page:
            errors = []
            page.on(
                "console",
                lambda m: (
                    errors.append(f"{m.location.get('url')}: {m.text}")
                    if m.type == "error" and m.location.get("url", "").startswith(base) and not _mathjax_probe(m.text)
                    else None
                ),
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            for name in pages:
                page.goto(base + name, wait_until="load")
                if name == "index.html":  # the site's address forwards to the book's first page
                    page.wait_for_url(base + "docs/index.html", timeout=30_000)
                    page.wait_for_load_state("load")
                broken = page.evaluate(
                    "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
                )
                assert [src for src in broken if src.startswith(base)] == [], name  # not the badges: offline here
                for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
                    url = urlparse(urljoin(page.url, href))
                    if href.startswith(base):
                        assert (book / url.path.lstrip("/")).exists(), (name, href)
                if name.startswith("notebooks/"):  # the launch buttons open this lesson
                    lesson = f"notebooks/{Path(name).stem}.ipynb"
                    html = page.content()
                    assert f"colab.research.google.com/github/{slug}/blob/main/{lesson}" in html, name
                    assert f"mybinder.org/v2/gh/{slug}/main?urlpath=tree/{lesson}" in html, name
                figures = page.locator("article img, main img").count()
                if name == "notebooks/01_data_preparation.html":
                    assert figures >= 3, f"the executed lesson shows {figures} figures"
                elif name.startswith("notebooks/") and f"{Path(name).stem}.ipynb" in shown:
                    assert figures >= 1, f"{name}: the executed lesson shows no figure"
            assert errors == [], errors
            page.goto(base + "search.html?q=Symmetrical+Guiding+Module")
            page.wait_for_selector("#search-results li, .search li", timeout=60_000)
            found = page.locator("#search-results li, .search li").count()
            page.screenshot(path=_artifacts() / "book-search.png")
    finally:
        server.shutdown()
    assert found >= 1
    for lesson in ("04_sgm_covariance", "05_student_distillation"):  # 04 needs STIX-Web's bold font
        formulas_render_offline(browser, book / "notebooks" / f"{lesson}.html")


def formulas_render_offline(browser, html: Path) -> None:
    """A page of the book opened from disk with every request off the disk refused: each formula is
    typeset by the MathJax the site serves itself (no raw ``\\(L_{KDAS} ...\\)`` left)."""
    with _page(browser, "book-math", 1300, 900) as page:
        on_disk = lambda route: route.continue_() if route.request.url.startswith("file://") else route.abort()  # noqa: E731
        page.route("**/*", on_disk)
        page.goto(html.as_uri(), wait_until="load")
        spans = page.locator("span.math, div.math").count()
        assert spans >= 5, f"{html.name} holds {spans} formulas"
        page.wait_for_function(
            "window.MathJax && MathJax.Hub && MathJax.Hub.getAllJax().length >= "
            f"{spans} && document.querySelectorAll('.MathJax, .MathJax_Display').length >= {spans}",
            timeout=60_000,
        )
        assert "\\(" not in page.locator("article").inner_text()
        log = page.evaluate("MathJax.Message.Log()")  # MathJax says here when a font it needs did not load
        assert "Can't load web font" not in log and "Math Processing Error" not in page.content(), log
        page.locator(".MathJax").first.scroll_into_view_if_needed()
        page.screenshot(path=_artifacts() / f"book-math-offline-{html.stem[:2]}.png")
