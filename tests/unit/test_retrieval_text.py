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
    # The bold title is not said twice: "Solution 1 resizes..." under it reads "It resizes...".
    assert lines[0].startswith("**Solution 1** [1] is the closest fit. It resizes images on the fly.")
    assert "- **Solution 2** [2]: It resizes images on the fly." in lines
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


def item(entry: str, title: str, summary: str, score: float = 1.0) -> SourceItem:
    return SourceItem(id=entry, title=title, url="u", summary=summary, score=score)


def test_the_why_says_what_the_entry_does_not_the_scene_it_sets() -> None:
    # Seen on review: the first sentence of a summary, the problem it solves, was chosen whenever the
    # question shared only words like "the" and "for" with every sentence.
    scene = item(
        "solution/a",
        "Media Exchange on AWS",
        "Traditional file transfer services for the media supply chain are expensive and slow. "
        "Media Exchange on AWS lets partners move large media files between accounts with encryption.",
    )
    text = ExtractiveAnswerer(0).compose("chain-of-custody storage for body camera footage", [scene])
    assert text == (
        "**Media Exchange on AWS** [1] is the closest fit. "
        "It lets partners move large media files between accounts with encryption."
    )


def test_the_why_is_a_whole_sentence_without_labels_notices_or_run_ons() -> None:
    answer = ExtractiveAnswerer(0)
    labelled = item("solution/a", "A", "Summary: This cdk code deploys a queue that feeds a function.")
    assert answer.compose("queue", [labelled]).endswith("fit. This cdk code deploys a queue that feeds a function.")
    notice = item(
        "solution/b",
        "B",
        "In December 2023, the Data Transfer solution replaced this solution. It copies vaults to buckets.",
    )
    assert answer.compose("copy vaults", [notice]).endswith("fit. It copies vaults to buckets.")
    abbreviated = item("solution/c", "C", "Adds users to a segment (i.e. a list of viewers) when they sign up.")
    assert "(i.e. a list of viewers) when they sign up." in answer.compose("segments", [abbreviated])
    cut_short = item("solution/d", "D", "Securely onboard vehicles (created as part of …")
    assert answer.compose("forms", [cut_short]).endswith("fit. Securely onboard vehicles…")
    unpunctuated = item("solution/f", "F", "Invoke Polly through Lambda on uploading a file into S3")
    assert answer.compose("polly", [unpunctuated]).endswith("uploading a file into S3.")
    not_a_verb = item("solution/g", "Glue job to Lambda", "Glue job to Lambda after a state change to timed out.")
    assert answer.compose("glue", [not_a_verb]).endswith("fit. Glue job to Lambda after a state change to timed out.")
    run_on = item(
        "solution/e", "E", "Collects logs from every account, " + "normalises them, " * 20 + "and stores them."
    )
    why = answer.compose("logs", [run_on]).split("fit. ", 1)[1]
    assert len(why) <= 241 and why.endswith(".") and why.startswith("Collects logs from every account")


def test_repeats_and_renamed_alternatives_are_listed_once() -> None:
    old, new = sorted(SAME_PRODUCT[1])
    sources = [
        item("solution/first", "First", "Schedules instances to stop at night."),
        item("pattern/q-sam", "EventBridge to SQS", "Create an EventBridge rule that invokes an SQS queue."),
        item(
            "pattern/q-cdk", "Amzon Eventbridge to Amazon SQS", "Create an EventBridge rule that invokes a SQS queue."
        ),
        item(old, "Rollback Guidance", "Reverts objects in a bucket to an earlier point in time."),
        item(new, "Sample S3 Rollback Tool", "Reverts objects in a bucket to an earlier point in time."),
    ]
    text = ExtractiveAnswerer(0).compose("stop instances at night", sources)
    assert "- **EventBridge to SQS** [2]: Create an EventBridge rule" in text
    assert "[3]" not in text  # the same sentence under another title is not a new alternative
    assert "- **Rollback Guidance** [4] (also listed as **Sample S3 Rollback Tool** [5]): Reverts objects" in text
    assert text.count("Reverts objects") == 1
