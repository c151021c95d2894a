# The driftline worker image (docker-compose.yml builds it as driftline:dev).
FROM python:3.11.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY driftline ./driftline
COPY infra/clickhouse/migrations ./infra/clickhouse/migrations
RUN pip install --no-cache-dir ".[worker]" \
    && useradd --system --create-home driftline \
    && mkdir -p /var/lib/driftline && chown driftline /var/lib/driftline
USER driftline
ENV DRIFTLINE_DATA_DIR=/var/lib/driftline
CMD ["driftline", "worker"]
