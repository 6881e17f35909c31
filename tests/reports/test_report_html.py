"""report.html renders the report's Markdown: no literal Markdown markup is left in its text."""
import re
from html.parser import HTMLParser

import numpy as np

from stcbench.reports.report import markdown_to_html, write_report
from tests.reports.helpers import make_run, video_metrics


class TextAndTags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> TextAndTags:
    parser = TextAndTags()
    parser.feed(page)
    return parser


def assert_no_markdown_left(text: str):
    assert "**" not in text and "`" not in text, re.findall(r".{0,40}(?:\*\*|`).{0,40}", text)[:3]
    assert not re.search(r"\|\s*:?-{3,}", text) and "![" not in text and not re.search(r"^#+ ", text, re.M)


def test_report_html_has_no_literal_markdown(tmp_path):
    root = tmp_path / "runs"
    for cell, mse, seed in (("lif", 100.0, 0), ("stclif", 50.0, 1)):
        run_dir = make_run(root, "mmnist", cell, cell, test=video_metrics(mse, 2 * mse, 0.7))
        rng = np.random.default_rng(seed)
        np.savez(run_dir / "predictions.npz", **{k: rng.random((2, 4, 1, 8, 8), dtype=np.float32)
                                                 for k in ("context", "truth", "pred")})
    out = tmp_path / "report"
    markdown = write_report(root, out, suite="quick", html=True,
                            header="**Reduced scale (`quick`)**: not comparable.").read_text()
    assert "**" in markdown and "`" in markdown and "|---" in markdown      # the source has markup to render
    page = parse((out / "report.html").read_text())
    assert_no_markdown_left("".join(page.text))
    assert {"h1", "h2", "table", "th", "td", "strong", "code", "img"} <= set(page.tags)


def test_inline_markup_and_escaping():
    page = markdown_to_html("# T <x>\n\n**b** `c` *e*\n\n| a | b |\n|---|---|\n| 1 | <2> |\n\n![c](f.png)\n")
    assert "<h1>T &lt;x&gt;</h1>" in page and "<td>&lt;2&gt;</td>" in page and '<img src="f.png"' in page
    assert "<strong>b</strong> <code>c</code> <em>e</em>" in page
    assert "<script" not in markdown_to_html("<script>alert(1)</script>\n")
