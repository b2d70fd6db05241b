"""Query expansion and the offline answer's text, without an index or a model."""

from __future__ import annotations

import json
from pathlib import Path

from core.messages import SourceItem
from search_worker.answerers import NO_MATCH_ANSWER, ExtractiveAnswerer
from search_worker.vocabulary import SAME_PRODUCT, SpellingCorrector

CATALOG = Path(__file__).resolve().parents[2] / "data" / "catalog" / "solutions.jsonl"


def test_spelling_fixes_typos_but_keeps_plurals_and_phrases() -> None:
    corrector = SpellingCorrector(["clickstream analytics for mobile apps", "web acl rules for waf"])
    expansion = corrector.expand("clikstream analitycs for web ACLs")
    assert expansion.text == "clickstream analitycs for web acls"  # two substitutions apart is left alone
    assert "waf" in expansion.extra  # "web ACLs" is still read as the phrase it is


def test_same_product_groups_name_catalog_entries() -> None:
    ids = {json.loads(line)["id"] for line in CATALOG.read_text().splitlines() if line.strip()}
    assert all(group <= ids and len(group) > 1 for group in SAME_PRODUCT)


def source(n: int, score: float) -> SourceItem:
    return SourceItem(
        id=f"solution/s{n}",
        title=f"Solution {n}",
        url="u",
        summary=f"Solution {n} resizes images on the fly. It has more features.",
        score=score,
        services=["AWS Lambda", "Amazon S3"],
    )


def test_answer_has_a_why_real_list_items_and_no_template() -> None:
    text = ExtractiveAnswerer(0).compose("resize images", [source(1, 1.0), source(2, 0.9), source(3, 0.1)])
    lines = text.splitlines()
    assert lines[0].startswith("**Solution 1** [1] is the closest fit. Solution 1 resizes images on the fly.")
    assert "- **Solution 2** [2]: Solution 2 resizes images on the fly." in lines
    assert "built on" not in text and "All of these use" not in text
    assert "[3]" not in text  # a weak result is not cited as filler


def test_refusal_says_it_once_and_suggests_a_rephrasing() -> None:
    assert NO_MATCH_ANSWER.lower().count("no matching") == 1
    assert "for example" in NO_MATCH_ANSWER


def test_one_product_under_two_names_is_named_once_with_both_citations() -> None:
    first, second = sorted(SAME_PRODUCT[0])
    renamed = [
        SourceItem(id=first, title="New Name", url="u", summary="Resizes images on the fly.", score=1.0),
        SourceItem(id=second, title="Old Name", url="u", summary="Resizes images on the fly.", score=1.0),
        source(3, 0.9),
    ]
    text = ExtractiveAnswerer(0).compose("resize images", renamed)
    assert text.splitlines()[0].startswith("**New Name** [1], also listed as **Old Name** [2], is the closest fit.")
    assert text.count("Resizes images on the fly.") == 1  # the second name does not repeat the description
    assert "- **Solution 3** [3]:" in text
