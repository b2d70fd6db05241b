"""Pure logic: token format, cookie signing, rate-limit headers, citations, settings, compose file."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import yaml

from api.identity import mint_anon_id, ratelimit_headers, verify_anon_cookie
from core.messages import SourceItem
from core.settings import load_settings
from marketplace.tokens import TOKEN_LENGTH, display_prefix, hash_token, new_token, well_formed
from search_worker.answerers import ExtractiveAnswerer, parse_citations

ROOT = Path(__file__).resolve().parents[2]


def test_tokens_have_prefix_entropy_and_checksum() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("sf_") and len(token) == TOKEN_LENGTH and well_formed(token)
    token = next(iter(tokens))
    typo = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert not well_formed(typo)
    assert not well_formed("sf_" + "x" * 1_000_000)
    assert len(hash_token(token)) == 64 and token not in hash_token(token)
    assert display_prefix(token) == token[:9]


def test_anonymous_cookie_cannot_be_forged() -> None:
    anon_id, cookie = mint_anon_id("s" * 40)
    assert verify_anon_cookie("s" * 40, cookie) == anon_id
    assert verify_anon_cookie("t" * 40, cookie) is None
    assert verify_anon_cookie("s" * 40, "other." + cookie.split(".")[1]) is None
    assert verify_anon_cookie("s" * 40, None) is None


def test_ratelimit_headers_follow_the_ietf_draft() -> None:
    headers = ratelimit_headers("registered", 10, 7, 3600)
    assert headers["RateLimit-Policy"] == '"registered";q=10;w=3600'
    assert headers["RateLimit"] == '"registered";r=7;t=3600'


def test_citations_are_parsed_in_order_and_bounded() -> None:
    sources = [SourceItem(id=f"s{i}", title="t", url="u", summary="x", score=1.0) for i in range(3)]
    assert parse_citations("A [2] then [1] and [2] and [9]", sources) == ["s1", "s0"]


def test_extractive_answer_cites_the_sources_it_uses() -> None:
    sources = [
        SourceItem(
            id="a",
            title="Image Handler",
            url="u",
            summary="Resize images on the fly. Uses CloudFront.",
            score=1.0,
            services=["Amazon CloudFront", "AWS Lambda"],
        ),
        SourceItem(
            id="b",
            title="Other",
            url="u",
            summary="Something about video transcoding at scale.",
            score=0.8,  # close enough to the first pick to be listed (a weak one would not be cited)
            services=["AWS Lambda"],
        ),
    ]
    text = ExtractiveAnswerer().compose("resize images", sources)
    assert "Image Handler" in text and "[1]" in text and "[2]" in text
    assert parse_citations(text, sources) == ["a", "b"]


def test_settings_fail_at_start_with_the_field_name() -> None:
    assert load_settings({"API_PORT": "9000"}).api_port == 9000
    with pytest.raises(msgspec.ValidationError, match="api_port"):
        load_settings({"API_PORT": "not-a-port"})
    with pytest.raises(msgspec.ValidationError, match="answer_provider"):
        load_settings({"ANSWER_PROVIDER": "gpt"})


def test_compose_file_runs_the_same_system_with_a_scalable_worker() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"valkey", "dynamodb", "api", "worker", "flusher"} <= set(services)
    assert "ports" not in services["worker"] and "container_name" not in services["worker"]
    assert services["dynamodb"]["image"].startswith("amazon/dynamodb-local")
    env = services["worker"]["environment"]
    assert env["REDIS_URL"].startswith("redis://valkey") and env["DYNAMODB_ENDPOINT_URL"] == "http://dynamodb:8000"


def test_env_example_lists_every_setting() -> None:
    listed = {
        line.split("=", 1)[0].lower()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert set(load_settings({}).__struct_fields__) <= listed


def test_payment_poll_schedule_follows_phonepe() -> None:
    from payments.reconcile import next_check_after

    first = 22.0
    times = [0.0]
    while times[-1] < first + 30 + 60 + 60 + 60 + 180:
        times.append(next_check_after(times[-1], first))
    gaps = [round(b - a, 6) for a, b in zip(times[1:], times[2:], strict=False)]
    assert times[1] == first
    assert set(gaps[:10]) == {3} and set(gaps[10:20]) == {6} and set(gaps[20:26]) == {10}
    assert set(gaps[26:28]) == {30} and set(gaps[29:]) == {60}
    assert next_check_after(0.0, first, scale=0.05) == first * 0.05


def test_webhook_authorization_is_sha256_of_username_and_password() -> None:
    import hashlib

    from payments.phonepe import verify_webhook_authorization, webhook_authorization

    expected = hashlib.sha256(b"user:pass").hexdigest()
    assert webhook_authorization("user", "pass") == expected
    assert verify_webhook_authorization(expected, "user", "pass")
    assert verify_webhook_authorization(f"SHA256 {expected.upper()}", "user", "pass")
    assert not verify_webhook_authorization(expected, "user", "other")
    assert not verify_webhook_authorization("", "user", "pass")


def test_pattern_families_group_build_variants_and_keep_direction() -> None:
    from search_worker.retrieval import pattern_families

    ids = [
        "pattern/apigw-sqs-cdk-typescript",
        "pattern/apigw-sqs-terraform",
        "pattern/aws-lambda-s3",
        "pattern/aws-s3-lambda",
        "solution/apigw-sqs",  # only serverless patterns form families
        "pattern/apigw-sqs-rest",  # REST is what it does, not how it is built
    ]
    assert pattern_families(ids) == [[0, 1]]


def test_pools_raise_members_to_their_best_less_the_gap_and_keep_exclusions() -> None:
    import numpy as np

    from search_worker.retrieval import _Pools

    scores = np.array([0.9, 0.5, -np.inf, 0.1, 0.7, 0.2], dtype=np.float32)
    _Pools([[0, 1, 2], [3, 5]]).raise_to_best(scores, 0.02)
    # each member at least its group's best less 0.02; a filtered-out one (-inf) stays out; 4 is in no group
    assert np.allclose(scores[[0, 1, 3, 4, 5]], [0.9, 0.88, 0.18, 0.7, 0.2]) and scores[2] == -np.inf
    empty = np.array([0.3], dtype=np.float32)
    _Pools([]).raise_to_best(empty, 0.0)
    assert empty[0] == np.float32(0.3)
