"""displaCy pages of linked docs: KB links, scores and candidates on hover, nothing unescaped."""

import shutil
import subprocess

import pytest
import spacy
from spacy.tokens import Span
from typer.testing import CliRunner

from spacy_beer2.cli import app
from spacy_beer2.scoring import CANDIDATES, SCORE
from spacy_beer2.visualize import kb_url, parse_linked_ents, render_html


@pytest.fixture
def linked_doc():
    for ext in (SCORE, CANDIDATES):
        if not Span.has_extension(ext):
            Span.set_extension(ext, default=None)
    doc = spacy.blank("en")("Jordan met AT&T in Paris .")
    jordan = Span(doc, 0, 1, label="PER", kb_id="Michael Jordan")
    jordan._.set(SCORE, 0.91)
    jordan._.set(CANDIDATES, [("Michael Jordan", 0.91), ("Jordan", 0.05)])
    hostile = Span(doc, 2, 3, label="ORG", kb_id='AT&T"><script>alert(1)</script>')
    doc.ents = [jordan, hostile, Span(doc, 4, 5, label="LOC")]  # the last one has no kb_id
    return doc


def test_kb_urls_follow_wikipedia_titles():
    assert kb_url("Michael Jordan") == "https://en.wikipedia.org/wiki/Michael_Jordan"
    assert kb_url("AT&T") == "https://en.wikipedia.org/wiki/AT%26T"
    assert kb_url("Washington (state)") == "https://en.wikipedia.org/wiki/Washington_(state)"
    assert kb_url("Q90", "https://www.wikidata.org/wiki/{}") == "https://www.wikidata.org/wiki/Q90"


def test_each_entity_links_to_its_page_with_score_and_candidates_on_hover(linked_doc):
    parsed = parse_linked_ents(linked_doc)
    assert [e["label"] for e in parsed["ents"]] == ["PER", "ORG", "LOC"]
    assert "kb_url" not in parsed["ents"][2]
    html = render_html([linked_doc])
    assert 'href="https://en.wikipedia.org/wiki/Michael_Jordan"' in html
    assert 'title="Michael Jordan  score 0.910\n  Michael Jordan  0.910\n  Jordan  0.050"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html  # ids and tooltips are escaped
    assert html.count("<mark") == 3
    unlinked = render_html([linked_doc], kb_url_template=None)
    assert 'href="#"' in unlinked and "wikipedia" not in unlinked


def test_link_cli_writes_a_page_and_jsonl(trained, tmp_path):
    _, _, _, model = trained
    html, jsonl = tmp_path / "out.html", tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["link", str(model), "Jordan scored for the Bulls last night .",
                                      "--html", str(html), "--jsonl", str(jsonl)])
    assert result.exit_code == 0, result.output
    import srsly

    records = list(srsly.read_jsonl(jsonl))
    assert records[0]["text"] == "Jordan scored for the Bulls last night ."
    links = records[0]["links"]
    assert links and links[0]["text"] == "Jordan" and links[0]["entity"] == "Michael Jordan"
    assert links[0]["candidates"][0]["entity"] == "Michael Jordan"
    page = html.read_text(encoding="utf8")
    assert page.startswith("<!DOCTYPE html>")
    assert 'href="https://en.wikipedia.org/wiki/Michael_Jordan"' in page


@pytest.mark.slow
def test_the_page_renders_in_a_headless_browser(linked_doc, tmp_path):
    """Chromium (Debian's chromium package) reads the page: the marks, the link and the tooltip are in its DOM."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium: apt-get install chromium")
    page = tmp_path / "page.html"
    page.write_text(render_html([linked_doc]), encoding="utf8")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count("<mark") == 3
    assert 'href="https://en.wikipedia.org/wiki/Michael_Jordan"' in dom
    assert "score 0.910" in dom
    assert "<script>alert(1)</script>" not in dom
