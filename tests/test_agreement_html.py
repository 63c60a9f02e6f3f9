"""The `agree --html` page in a real headless Chromium: it renders, its images load, no console errors."""

import shutil

import pandas as pd

from spanbank.agreement.render import to_html
from spanbank.agreement.report import build_report
from spanbank.synth import synth_chunks

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ODD = r"$\nocommand{x}$ <b>&"  # maths for matplotlib, markup for HTML: both must stay literal text


def _report() -> dict:
    articles, spans, relations = next(synth_chunks(12, seed=3, annotators=3, chunk=12))
    spans = spans.assign(annotator=spans["annotator"].replace({"ann2": ODD}))
    ann = spans[["annotation_id", "article_id", "annotator"]].drop_duplicates()
    ann = ann.assign(
        project="p", origin="human", cancelled=False, superseded=False, deleted_at=None
    )
    # adjudicated gold on the first articles: a copy of ann1's annotations
    first = ann[(ann["annotator"] == "ann1") & ann["article_id"].isin(articles["article_id"][:4])]
    gold_ann = first.assign(
        annotation_id="gold-" + first["annotation_id"], annotator="lead", origin="gold"
    )
    gold_spans = spans[spans["annotation_id"].isin(first["annotation_id"])]
    gold_spans = gold_spans.assign(annotation_id="gold-" + gold_spans["annotation_id"])
    tasks = pd.DataFrame(
        {
            "project": "p",
            "ls_url": "http://127.0.0.1:8080",
            "ls_project_id": 1,
            "article_id": articles["article_id"],
            "ls_task_id": range(1, len(articles) + 1),
        }
    )
    return build_report(
        articles,
        pd.concat([ann, gold_ann], ignore_index=True),
        pd.concat([spans, gold_spans], ignore_index=True).drop(columns="annotator"),
        relations,
        tasks,
        gold=gold_ann,
        bootstrap=50,
        seed=0,
        views=True,
    )


def test_html_report_renders_in_chromium(tmp_path):
    from playwright import sync_api as playwright

    page_file = tmp_path / "agreement.html"
    page_file.write_text(to_html(_report(), names={"ann1": "alice@example.org"}), encoding="utf-8")
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.complete, e.naturalWidth])"
        )
        body = page.inner_text("body")
        links = page.eval_on_selector_all("a[href*='/projects/1/data?task=']", "els => els.length")
        views = page.eval_on_selector_all(".view", "els => els.length")
        diffs = page.eval_on_selector_all(".view .d", "els => els.length")
        bold = page.eval_on_selector_all("b", "els => els.map(e => e.textContent)")
        page.screenshot(path=str(tmp_path / "agreement.png"), full_page=True)
        browser.close()
    assert errors == []
    assert len(images) == 3, "token kappa, span F1 and attribution heatmaps"
    assert all(done and width > 0 for done, width in images)
    for label in ("QUOTE", "SPEAKER", "CUE"):
        assert label in body
    assert links > 0, "lowest-agreement articles link to their Label Studio tasks"
    assert views == 10 and diffs > 0, "each least-agreed article shows its disagreements"
    assert ODD in body and "&" not in "".join(bold)  # the odd name is text, not markup
    assert "alice@example.org (ann1)" in body  # --show-names
    for heading in (
        "How to read these figures",
        "Which label did the other annotator give?",
        "Against adjudicated gold",
        "Where they disagree",
    ):
        assert heading in body
    assert "lead" not in body.split("Against adjudicated gold")[0]  # gold is not an annotator
