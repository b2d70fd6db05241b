"""Admin analytics, computed from DynamoDB (payments, subscription history) and Redis's stats counters.

Definitions:
- revenue: completed payments, net of refunded ones, by UTC day and month of completion;
- active Pro: users whose latest unrefunded pass ends in the future (after refunds, by the Pro ledger);
- MRR: the active passes' prices, each scaled to 30 days;
- ARPU: net revenue of the last 30 days divided by the users who paid in them;
- funnel over the window: distinct anonymous visitors → sign-ups → users who bought Pro.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import msgspec
from redis.asyncio import Redis

from core import stats
from core.settings import Settings
from marketplace.entitlements import ProPasses
from marketplace.history import History
from payments.checkout import TransactionStore, latest_passes

DAY_S = 86400


class Funnel(msgspec.Struct):
    anonymous_visitors: int
    signups: int
    pro_buyers: int


class NoMatch(msgspec.Struct):
    query: str
    count: int


class Analytics(msgspec.Struct):
    window_days: int
    revenue_by_day: dict[str, int]
    revenue_by_month: dict[str, int]
    mrr_paise: int
    arpu_paise: int
    active_pro: int
    signups_by_day: dict[str, int]
    funnel: Funnel
    searches_by_day: dict[str, dict[str, int]]
    no_match: list[NoMatch]


async def compute(
    dynamodb: Any, redis: Redis, settings: Settings, *, days: int = 30, now: float | None = None
) -> Analytics:
    now = time.time() if now is None else now
    since = now - days * DAY_S
    completed = await TransactionStore(dynamodb, settings).by_state("COMPLETED")
    payments = [t for t in completed if t.refund_state != "COMPLETED"]
    by_day: dict[str, int] = defaultdict(int)
    by_month: dict[str, int] = defaultdict(int)
    for t in payments:
        by_day[stats.day(t.completed_at)] += t.amount_paise
        by_month[stats.day(t.completed_at)[:7]] += t.amount_paise
    latest = await latest_passes(ProPasses(dynamodb, settings), completed)
    active = [t for t, until in latest.values() if until > now]
    mrr = sum(round(t.amount_paise * 30 / settings.pro_period_days) for t in active)
    recent = [t for t in payments if t.completed_at >= since]
    payers = {t.user_id for t in recent}
    arpu = round(sum(t.amount_paise for t in recent) / len(payers)) if payers else 0

    history = History(dynamodb, settings)
    signups = await history.events("signup", since_ms=int(since * 1000))
    upgrades = await history.events("upgrade", since_ms=int(since * 1000))
    signups_by_day = dict(sorted(Counter(stats.day(e.at_ms / 1000) for e in signups).items()))

    day_list = [stats.day(now - n * DAY_S) for n in range(days)]
    searches = await _searches(redis, day_list)
    visitors = int(await redis.pfcount(*[stats.anonymous_visitors_key(d) for d in day_list]))
    entries = await redis.xrevrange(stats.NO_MATCH_STREAM, count=stats.NO_MATCH_MAXLEN)
    questions = Counter(
        " ".join(f[b"query"].decode().lower().split())
        for _, f in entries
        if int(_.decode().split("-")[0]) >= since * 1000
    )
    return Analytics(
        window_days=days,
        revenue_by_day=dict(sorted(by_day.items())),
        revenue_by_month=dict(sorted(by_month.items())),
        mrr_paise=mrr,
        arpu_paise=arpu,
        active_pro=len({t.user_id for t in active}),
        signups_by_day=signups_by_day,
        funnel=Funnel(anonymous_visitors=visitors, signups=len(signups), pro_buyers=len({e.user_id for e in upgrades})),
        searches_by_day=dict(sorted(searches.items())),
        no_match=[NoMatch(query=q, count=n) for q, n in questions.most_common(100)],
    )


async def _searches(redis: Redis, day_list: list[str]) -> dict[str, dict[str, int]]:
    tiers = ("anonymous", "registered", "pro")
    counts = await redis.mget([stats.searches_key(d, tier) for d in day_list for tier in tiers])
    searches: dict[str, dict[str, int]] = {}
    for i, d in enumerate(day_list):
        row = {tier: int(counts[i * len(tiers) + j] or 0) for j, tier in enumerate(tiers)}
        if any(row.values()):
            searches[d] = row
    return searches


def to_csv(analytics: Analytics, table: str) -> str:
    """One table of the analytics as CSV: revenue, signups, searches or no_match."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    if table == "revenue":
        writer.writerow(["day", "revenue_paise"])
        writer.writerows(analytics.revenue_by_day.items())
    elif table == "signups":
        writer.writerow(["day", "signups"])
        writer.writerows(analytics.signups_by_day.items())
    elif table == "searches":
        writer.writerow(["day", "anonymous", "registered", "pro"])
        writer.writerows([d, r["anonymous"], r["registered"], r["pro"]] for d, r in analytics.searches_by_day.items())
    elif table == "no_match":
        writer.writerow(["query", "count"])
        writer.writerows([m.query, m.count] for m in analytics.no_match)
    else:
        raise KeyError(table)
    return out.getvalue()
