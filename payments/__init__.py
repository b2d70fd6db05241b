"""Pro upgrades through PhonePe: the async client, checkout, webhooks, reconciliation and a simulator."""
