"""From the reader's window outputs to non-overlapping document spans."""

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple

import torch
from torch.nn import functional as F


@dataclass
class Link:
    start: int  # first token, document offsets
    end: int  # last token + 1
    row: int  # KB row
    score: float  # p_start * p_end * p_rank
    alternatives: List[Tuple[int, float]] = field(default_factory=list)  # (KB row, score) at the same span


def window_links(
    start: torch.Tensor,  # (W, C, S+1) logits, index 0 = no answer
    end: torch.Tensor,
    rank: torch.Tensor,  # (W, C)
    rows: torch.Tensor,  # (W, C) KB rows of the candidates, -1 = padding
    offsets: torch.Tensor,  # (W,) document position of each window's first token
    max_span_length: int,
    threshold: float,
    n_alternatives: int,
) -> List[Tuple[int, Link]]:
    """(window, link) for every span and candidate whose score exceeds ``threshold`` (see ``span_log_probs``)."""
    W, C, S1 = start.shape
    if W == 0 or C == 0 or S1 < 2:
        return []
    scores = span_log_probs(start, end) + F.logsigmoid(rank).view(W, C, 1, 1)  # (W, C, S, S)
    i = torch.arange(S1 - 1, device=start.device)
    band = (i.view(1, -1) >= i.view(-1, 1)) & (i.view(1, -1) - i.view(-1, 1) < max_span_length)
    scores = scores.masked_fill(~band, float("-inf")).masked_fill((rows < 0).view(W, C, 1, 1), float("-inf"))
    hits = (scores > math.log(threshold)).nonzero().tolist()
    links = []
    for w, c, s, e in hits:
        offset = int(offsets[w])
        link = Link(offset + s, offset + e + 1, int(rows[w, c]), float(scores[w, c, s, e].exp()))
        if n_alternatives:
            top = torch.topk(scores[w, :, s, e], min(n_alternatives, C))
            link.alternatives = [
                (int(rows[w, j]), float(p.exp())) for p, j in zip(top.values, top.indices) if rows[w, j] >= 0
            ]
        links.append((w, link))
    return links


def span_log_probs(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """log P(span s..e) of each candidate (W, C, S, S): p_start(s) · p_end(e) · Π (1 - p_start(k)) over the
    starts inside the span (s < k <= e) · Π (1 - p_end(k)) over the ends inside it (s <= k < e).

    The last two factors keep a candidate mentioned twice in a window from being decoded as one span from the first
    start to the second end: independent p_start · p_end would rank that span first.
    """
    lp_start = start.log_softmax(-1)[..., 1:]
    lp_end = end.log_softmax(-1)[..., 1:]
    # cumulative log(1 - p) with a leading 0, so that inner sums are differences
    no_start = torch.log1p(-lp_start.exp().clamp(max=1 - 1e-6)).cumsum(-1)
    no_end = F.pad(torch.log1p(-lp_end.exp().clamp(max=1 - 1e-6)).cumsum(-1), (1, 0))
    inner_starts = no_start.unsqueeze(2) - no_start.unsqueeze(3)  # [s, e]: sum over s < k <= e
    inner_ends = no_end[..., :-1].unsqueeze(2) - no_end[..., :-1].unsqueeze(3)  # [s, e]: sum over s <= k < e
    return lp_start.unsqueeze(3) + lp_end.unsqueeze(2) + inner_starts + inner_ends


def resolve(links: Iterable[Link]) -> List[Link]:
    """One link per span (the best over overlapping windows), then non-overlapping spans chosen by score."""
    best: Dict[Tuple[int, int], Link] = {}
    for link in links:
        key = (link.start, link.end)
        if key not in best or link.score > best[key].score:
            best[key] = link
    taken: List[Link] = []
    occupied = set()
    for link in sorted(best.values(), key=lambda lk: (-lk.score, lk.start, lk.end)):
        tokens = range(link.start, link.end)
        if not occupied.intersection(tokens):
            occupied.update(tokens)
            taken.append(link)
    return sorted(taken, key=lambda lk: lk.start)
