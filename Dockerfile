# The credits worker, beat, Flower and HTTP API image used by docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY credits ./credits
# The worker, Flower, HTTP and CLI extras only, at the exact versions of constraints.txt:
# compose runs its own Redis, so no embedded redis-server.
RUN pip install --no-cache-dir -c constraints.txt ".[worker,flower,webhooks,http,cli]" \
    && useradd --create-home --uid 10001 credits
# Celery refuses to be comfortable as root; so do we.
USER credits
CMD ["celery", "-A", "credits.tasks", "worker", "--loglevel", "INFO"]
