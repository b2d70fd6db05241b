"""The search workers: FAISS and BM25 retrieval, answer generation, and the event streams."""
