FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY core core
COPY quota quota
COPY marketplace marketplace
COPY payments payments
COPY search_worker search_worker
COPY api api
COPY frontend frontend
COPY data data
RUN pip install --no-cache-dir .
