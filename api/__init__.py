"""The Litestar gateway: quotas, the JSON API, the SSE streams and the pages."""
