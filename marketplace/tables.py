"""Every marketplace DynamoDB table, named from TABLE_PREFIX, with the keys its access patterns need."""

from __future__ import annotations

from core.dynamo import TableSpec
from core.settings import Settings


def table_specs(settings: Settings) -> list[TableSpec]:
    t = settings.table
    return [
        TableSpec(t("users"), "pk"),
        # token-index is sparse: only the old system's rows that still hold a clear token are in it.
        TableSpec(t("user-solution-entitlements"), "pk", "sk", indexes=(("token-index", "token", None),)),
        TableSpec(t("sessions"), "pk", ttl_attribute="expires_at"),
        TableSpec(t("solutions"), "solution_id", indexes=(("status-index", "status", "solution_id"),)),
        TableSpec(
            t("payment-transactions"),
            "merchant_order_id",
            indexes=(
                ("user-index", "user_id", "created_at"),
                ("state-index", "state", "created_at"),
                ("refund-index", "refund_state", "created_at"),  # sparse: only orders with a refund
            ),
        ),
        TableSpec(
            t("partner-applications"),
            "application_id",
            indexes=(("status-index", "status", "created_at"), ("user-index", "user_id", "created_at")),
        ),
        TableSpec(t("tokens"), "token_hash", indexes=(("user-index", "user_id", "created_at"),)),
        TableSpec(t("usage"), "subject", "period"),
        TableSpec(
            t("outbox"),
            "message_key",
            indexes=(("due-index", "queue", "due_at"),),  # sparse: only messages not sent yet
            ttl_attribute="expires_at",
        ),
        TableSpec(t("counters"), "name"),
        TableSpec(t("subscription-history"), "user_id", "event_key", indexes=(("event-index", "event", "event_key"),)),
    ]
