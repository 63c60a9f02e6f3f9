"""The `agree --html` page in a real headless Chromium: it renders, its images load, no console errors."""

import shutil

import pandas as pd

from spanbank.agreement_report import build_report, to_html
from spanbank.synth import synth_chunks

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _report() -> dict:
    articles, spans, relations = next(synth_chunks(12, seed=3, annotators=3, chunk=12))
    ann = spans[["annotation_id", "article_id", "annotator"]].drop_duplicates()
    ann = ann.assign(project="p", origin="human", cancelled=False, superseded=False, deleted_at=None)
    tasks = pd.DataFrame({
        "project": "p", "ls_url": "http://127.0.0.1:8080", "ls_project_id": 1,
        "article_id": articles["article_id"], "ls_task_id": range(1, len(articles) + 1),
    })
    return build_report(articles, ann, spans.drop(columns="annotator"), relations, tasks, bootstrap=50, seed=0)


def test_html_report_renders_in_chromium(tmp_path):
    from playwright import sync_api as playwright
    page_file = tmp_path / "agreement.html"
    page_file.write_text(to_html(_report()), encoding="utf-8")
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        body = page.inner_text("body")
        links = page.eval_on_selector_all("a[href*='/projects/1/data?task=']", "els => els.length")
        page.screenshot(path=str(tmp_path / "agreement.png"), full_page=True)
        browser.close()
    assert errors == []
    assert images, "the page should embed annotator-pair heatmaps"
    assert all(done and width > 0 for done, width in images)
    for label in ("QUOTE", "SPEAKER", "CUE"):
        assert label in body
    assert links > 0, "lowest-agreement articles link to their Label Studio tasks"
