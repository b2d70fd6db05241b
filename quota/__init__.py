"""The quota engine: atomic Redis Lua counters, written behind to DynamoDB by the flusher."""
