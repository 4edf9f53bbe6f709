"""Opens the executed notebooks (target/notebooks/, written by run_notebooks.py) in headless
Chromium and checks that what they display really renders.

For every notebook: the page (nbconvert's HTML export) throws no JavaScript error, logs no
console error and asks the network for nothing (views and charts must be self-contained);
every SVG drawn has content and a size. For 05-visualising, also: each kind of view is there
with its parts, and hovering tokens in the attention view changes which tokens are lit, in
the way a causal model's attention must (nothing after the hovered token). A screenshot of
each page is saved under target/browser/ for a person to look at.

Chromium is Debian's (/usr/bin/chromium, installed by `make setup`; MECHLENS_CHROMIUM
overrides), driven through Playwright, which never downloads a browser here.

Usage: browser_check.py [EXECUTED_NOTEBOOK...]   (default: all of target/notebooks/)
"""

import os
import re
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "target" / "notebooks"
OUT = ROOT / "target" / "browser"
CHROMIUM = os.environ.get("MECHLENS_CHROMIUM", "/usr/bin/chromium")
# The flags a closed network needs: without them Chromium keeps calling Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
WHITE = "rgb(255, 255, 255)"


def export(executed: Path) -> Path:
    """The notebook as a standalone HTML page. nbconvert's template links MathJax and
    require.js from a CDN; those tags are removed so that any network request left is ours."""
    nb = nbformat.read(executed, as_version=4)
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    html = re.sub(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", "", html)
    html = re.sub(r"<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*/?>", "", html)
    rel = executed.relative_to(EXECUTED) if executed.is_relative_to(EXECUTED) else Path(executed.name)
    page = OUT / rel.with_suffix(".html")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(html, encoding="utf-8")
    return page


def check_svgs(page) -> list[str]:
    """Every SVG in the outputs rendered: an image/svg+xml output (an <img> of a data URL)
    decoded with a size and has drawn pixels other than white; an SVG inline in HTML output
    has elements and a size."""
    result = page.evaluate(
        """async () => {
            const imgs = Array.from(document.querySelectorAll('.jp-OutputArea-output img'))
                .filter(i => i.src.startsWith('data:image/svg+xml'));
            const out = [];
            for (const [i, img] of imgs.entries()) {
                try { await img.decode(); } catch (e) { out.push(`svg image ${i} did not decode: ${e}`); continue; }
                const c = document.createElement('canvas');
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                if (!c.width || !c.height) { out.push(`svg image ${i} has size ${c.width}x${c.height}`); continue; }
                const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                const px = g.getImageData(0, 0, c.width, c.height).data;
                let ink = 0;
                for (let p = 0; p < px.length; p += 4) if (px[p+3] > 0 && (px[p] < 240 || px[p+1] < 240 || px[p+2] < 240)) ink++;
                if (ink < 20) out.push(`svg image ${i} drew only ${ink} non-white pixels`);
            }
            const inline = Array.from(document.querySelectorAll('.jp-OutputArea-output svg'))
                .filter(s => !s.parentElement.closest('svg'));
            inline.forEach((s, i) => { const b = s.getBoundingClientRect();
                if (s.childElementCount === 0 || b.width < 1 || b.height < 1)
                    out.push(`inline svg ${i}: ${s.childElementCount} elements, ${b.width}x${b.height}`); });
            return {images: imgs.length, inline: inline.length, problems: out};
        }"""
    )
    print(f"  {result['images']} SVG images, {result['inline']} inline SVGs")
    return result["problems"]


def check_views(page) -> list[str]:
    """The 05 notebook's views: each kind present, with its parts."""
    problems = []
    counts = page.evaluate(
        """() => ({
            attention: document.querySelectorAll('.mechlens-attention').length,
            canvases: Array.from(document.querySelectorAll('.mechlens-attention')).map(v => v.querySelectorAll('canvas.mlv-head').length),
            tokens: document.querySelectorAll('.mechlens-tokens .mlv-tok').length,
            topk: document.querySelectorAll('.mechlens-topk td.mlv-cell').length,
            dashboard: document.querySelectorAll('.mechlens-dashboard').length,
            dashboard_svgs: document.querySelectorAll('.mechlens-dashboard svg rect').length,
            dashboard_contexts: document.querySelectorAll('.mechlens-dashboard .mlv-contexts .mlv-row').length,
            heatmaps: document.querySelectorAll('svg.mechlens-heatmap rect title').length,
            panels: document.querySelectorAll('.mechlens-panel').length,
        })"""
    )
    print(f"  views: {counts}")
    if counts["attention"] < 2:
        problems.append(f"expected attention views for BabyLlama and MiniLM, found {counts['attention']}")
    if not counts["canvases"] or min(counts["canvases"]) < 1:
        problems.append(f"attention views without head maps: {counts['canvases']}")
    for key in ["tokens", "topk", "dashboard", "dashboard_contexts", "heatmaps", "panels"]:
        if counts[key] < 1:
            problems.append(f"no {key} rendered")
    if counts["dashboard_svgs"] < 2:
        problems.append("the feature dashboard's histogram has no bars")
    return problems


def token_colours(view) -> list[str]:
    return view.locator(".mlv-tok").evaluate_all("ts => ts.map(t => getComputedStyle(t).backgroundColor)")


def check_attention_hover(page) -> list[str]:
    """Hovering a token lights the tokens it attends to, and only those at or before it (the
    first view is a causal model's); another token or another head lights others."""
    problems = []
    view = page.locator(".mechlens-attention").first
    view.scroll_into_view_if_needed()
    tokens = view.locator(".mlv-tok")
    n = tokens.count()
    if n < 4:
        return [f"the attention view has {n} tokens, expected at least 4"]
    before = token_colours(view)
    if any(c != WHITE for c in before):
        problems.append(f"tokens are coloured before any hover: {before}")
    q = n // 2
    tokens.nth(q).hover()
    at_q = token_colours(view)
    lit = [k for k, c in enumerate(at_q) if c != WHITE]
    if not lit:
        problems.append(f"hovering token {q} lit nothing")
    if any(k > q for k in lit):
        problems.append(f"hovering token {q} lit later tokens {[k for k in lit if k > q]}: a causal model cannot attend there")
    info = view.locator(".mlv-info").inner_text()
    if f"pos {q}" not in info:
        problems.append(f"the info line does not name the hovered position {q}: {info!r}")
    tokens.nth(n - 1).hover()
    at_last = token_colours(view)
    if at_last == at_q:
        problems.append("hovering another token did not change the highlighted attention")
    heads = view.locator("canvas.mlv-head")
    if heads.count() > 1:
        heads.nth(1).click()
        tokens.nth(n - 1).hover()
        if token_colours(view) == at_last:
            problems.append("selecting another head did not change the highlighted attention")
        heads.nth(0).click()
    tokens.nth(q).hover()
    view.screenshot(path=str(OUT / "attention-hover.png"))
    page.mouse.move(0, 0)
    return problems


def check(browser, executed: Path) -> list[str]:
    page_file = export(executed)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(f"JavaScript error: {e}"))
    page.on("console", lambda m: errors.append(f"console error: {m.text}") if m.type == "error" else None)
    page.route("**/*", lambda route: (route.continue_() if route.request.url.startswith(("file:", "data:", "blob:"))
                                       else (requests.append(route.request.url), route.abort())))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    problems = check_svgs(page)
    if "05-visualising" in executed.name:
        problems += check_views(page)
        problems += check_attention_hover(page)
    shot = page_file.with_suffix(".png")
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    problems += errors
    problems += [f"network request (views must be self-contained): {u}" for u in requests]
    return problems


def main() -> int:
    # By default the executed copy of every notebook under notebooks/: one that is missing
    # did not run, which is a failure here too.
    paths = [Path(p).resolve() for p in sys.argv[1:]] or [
        EXECUTED / nb.relative_to(ROOT / "notebooks")
        for nb in sorted((ROOT / "notebooks").rglob("*.ipynb"))
        if ".ipynb_checkpoints" not in nb.parts
    ]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"not executed (run tests/run_notebooks.py first): {[str(p) for p in missing]}")
        return 1
    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM}: run make setup (it installs Debian's chromium)")
        return 1
    passed = failed = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for path in paths:
            name = path.relative_to(EXECUTED) if path.is_relative_to(EXECUTED) else path
            problems = check(browser, path)
            if problems:
                failed += 1
                print(f"FAILED  {name}:\n    " + "\n    ".join(problems))
            else:
                passed += 1
                print(f"ok      {name} (screenshot in target/browser/)")
        browser.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
