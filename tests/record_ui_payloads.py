"""Record what Label Studio's own labeling UI submits, driving it in headless Chromium.

Usage: python tests/record_ui_payloads.py [CASE...]  (needs `playwright` and /usr/bin/chromium; uses the
test server data dir, see conftest.py). Writes tests/data/ls/ui_<name>.json: the task as the
API returns it, with the annotation the UI submitted and the substrings the script selected.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from conftest import DATA, _test_data_dir  # noqa: E402
from spanbank.labelstudio import server  # noqa: E402
from spanbank.labelstudio.client import LabelStudioClient  # noqa: E402
from spanbank.schema import load_schema  # noqa: E402

CASES = {
    "emoji": (
        "Fans 😀🎉 cheered 🏆 in Rome. “We won the cup,” said Ana López 👍.",
        [
            ("EVENT", "cheered"),
            ("QUOTE", "“We won the cup,”"),
            ("CUE", "said"),
            ("SPEAKER", "Ana López"),
        ],
    ),
    "crlf": (
        "Headline\r\n\r\nThe mayor said: “Roads will reopen.”\r\nMore later, she added.",
        [
            ("SPEAKER", "The mayor"),
            ("CUE", "said"),
            ("QUOTE", "“Roads will reopen.”"),
            ("CUE", "added"),
        ],
    ),
    "tabs": (
        "Col1\tCol2\t\tThe minister\twarned: “No deal.”\n\tIndented line said Bo.",
        [
            ("SPEAKER", "The minister"),
            ("CUE", "warned"),
            ("QUOTE", "“No deal.”"),
            ("SPEAKER", "Bo"),
        ],
    ),
    "combining": (
        "Cafe\u0301 owner Jose\u0301 Nu\u0303n\u0303ez said “déjà vu” twice, said Zoë.",
        [("CUE", "said"), ("QUOTE", "“déjà vu”"), ("SPEAKER", "Zoë")],
    ),
    "mixed": (
        "Fans 😀🎉 cheered.\r\nShe said:\t“We won,” loudly. Café and Cafe\u0301 “déjà vu” said José.",
        [("QUOTE", "“We won,”"), ("SPEAKER", "José"), ("EVENT", "cheered"), ("CUE", "said")],
    ),
    # a quote broken by its cue: two QUOTE regions, then linked with "Create Relation"
    "fragments": (
        "Fans 😀 waited. “We win,” the coach said, “and they lose.” Then she left.",
        [("QUOTE", "“We win,”"), ("QUOTE", "“and they lose.”"), ("SPEAKER", "the coach")],
    ),
}
# links drawn after the regions, (from text, to text): the UI's "Create Relation" leaves them unnamed
LINKS = {"fragments": [("“We win,”", "“and they lose.”")]}

SELECT = """([sub]) => {
  const root = document.querySelector('.lsf-richtext') || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const i = n.data.indexOf(sub);
    if (i >= 0) {
      const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + sub.length);
      const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
      const rect = r.getBoundingClientRect();
      n.parentElement.dispatchEvent(new MouseEvent('mouseup', {bubbles: true, clientX: rect.right, clientY: rect.bottom}));
      return true;
    }
  }
  return false;
}"""


def _link(page, a: str, b: str) -> None:
    """Select region `a` in the outliner, press "Create Relation", then pick region `b`."""
    page.keyboard.press("Escape")
    panel = page.locator("[class*=outliner]")
    panel.get_by_text(a).first.click()
    page.wait_for_timeout(500)
    page.locator('button[aria-label="Create Relation"]').first.click()
    page.wait_for_timeout(500)
    panel.get_by_text(b).first.click()
    page.wait_for_timeout(500)


def main() -> None:
    env = server.read_env_file(server.env_file_path(_test_data_dir()))
    url = env["LABEL_STUDIO_URL"]
    client = LabelStudioClient(url, env["LABEL_STUDIO_API_KEY"])
    proj = client.create_project(f"ui-{uuid.uuid4().hex[:6]}", load_schema().label_config())
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/user/login/")
        page.fill("input[name=email]", env["LABEL_STUDIO_USERNAME"])
        page.fill("input[name=password]", env["LABEL_STUDIO_PASSWORD"])
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        for name, (text, picks) in CASES.items():
            if sys.argv[1:] and name not in sys.argv[1:]:
                continue
            tid = client.import_tasks(
                proj["id"], [{"data": {"text": text, "article_id": name, "title": name}}]
            )[0]
            page.goto(f"{url}/projects/{proj['id']}/data?task={tid}")
            page.wait_for_selector(".lsf-richtext__line", timeout=60000)
            page.wait_for_timeout(800)
            for label, sub in picks:
                page.locator(".lsf-label", has_text=label).first.click()
                # the UI may show composed characters: select what it displays
                if not page.evaluate(SELECT, [sub]):
                    import unicodedata

                    assert page.evaluate(SELECT, [unicodedata.normalize("NFC", sub)]), (name, sub)
                page.wait_for_timeout(300)
            for a, b in LINKS.get(name, ()):
                _link(page, a, b)
            page.get_by_role("button", name="Submit").click()
            page.wait_for_timeout(2000)
            task = [t for pg in client.task_pages(proj["id"], ids=[tid]) for t in pg][0]
            for a in task["annotations"]:
                a["created_username"] = "annotator"
            task["annotators"] = []
            task["spanbank_selected"] = picks
            out = DATA / "ls" / f"ui_{name}.json"
            out.write_text(json.dumps(task, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(
                out,
                [
                    (r["value"]["start"], r["value"]["end"], r["value"]["text"])
                    for a in task["annotations"]
                    for r in a["result"]
                    if "value" in r  # relations have none
                ],
            )
        browser.close()


if __name__ == "__main__":
    main()
