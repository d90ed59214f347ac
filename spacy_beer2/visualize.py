"""displaCy for linked docs: each entity links to its KB page and shows its score and best candidates on hover.

spaCy's entity renderer links ``kb_id`` through a ``kb_url_template``; here each entity also carries a tooltip
(score and the linker's top candidates from ``span._.beer2_candidates``), passed through displaCy's manual mode and
an entity template with a ``title`` attribute.
"""

from html import escape
from typing import Any, Dict, Iterable, List, Optional
from urllib.parse import quote

from spacy import displacy
from spacy.displacy.templates import TPL_ENT
from spacy.tokens import Doc, Span

from .scoring import CANDIDATES, SCORE

WIKIPEDIA_URL = "https://en.wikipedia.org/wiki/{}"
# spaCy's entity template, with the tooltip on the highlighted mention
TPL_LINKED_ENT = TPL_ENT.replace('<mark class="entity"', '<mark class="entity" title="{hover}"', 1)


def kb_url(kb_id: str, template: str = WIKIPEDIA_URL) -> str:
    """The page of an entity: Wikipedia titles use underscores for spaces; the id is URL-quoted."""
    return template.format(quote(kb_id.replace(" ", "_"), safe="(),_-.'!*:"))


def hover_text(ent: Span) -> str:
    """What the tooltip says: the link's score, then the linker's best candidates with theirs."""
    score = _extension(ent, SCORE)
    lines = [ent.kb_id_ + (f"  score {score:.3f}" if score is not None else "")]
    for entity_id, score in _extension(ent, CANDIDATES) or []:
        lines.append(f"  {entity_id}  {score:.3f}")
    return "\n".join(lines)


def parse_linked_ents(doc: Doc, kb_url_template: Optional[str] = WIKIPEDIA_URL) -> Dict[str, Any]:
    """A doc in displaCy's manual entity format, with KB links and tooltips."""
    ents = []
    for ent in doc.ents:
        record: Dict[str, Any] = {"start": ent.start_char, "end": ent.end_char, "label": ent.label_,
                                  "params": {"hover": escape(hover_text(ent), quote=True)}}
        if ent.kb_id_:
            record["kb_id"] = escape(ent.kb_id_)
            record["kb_url"] = escape(kb_url(ent.kb_id_, kb_url_template), quote=True) if kb_url_template else "#"
        ents.append(record)
    return {"text": doc.text, "ents": ents, "title": doc.user_data.get("title")}


def render_html(docs: Iterable[Doc], kb_url_template: Optional[str] = WIKIPEDIA_URL, page: bool = True) -> str:
    """An HTML page (or fragment) of the docs' linked entities."""
    parsed: List[Dict[str, Any]] = [parse_linked_ents(doc, kb_url_template) for doc in docs]
    return displacy.render(parsed, style="ent", manual=True, page=page, options={"template": TPL_LINKED_ENT})


def _extension(ent: Span, name: str) -> Any:
    return ent._.get(name) if Span.has_extension(name) else None
