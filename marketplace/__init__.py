"""The marketplace control plane: users, sessions, tokens, entitlements, the catalog and partners."""
