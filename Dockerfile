# The credits worker, beat and Flower image used by docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY credits ./credits
# The worker and Flower extras only: compose runs its own Redis, so no embedded redis-server.
RUN pip install --no-cache-dir ".[worker,flower]" \
    && useradd --create-home --uid 10001 credits
# Celery refuses to be comfortable as root; so do we.
USER credits
CMD ["celery", "-A", "credits.tasks", "worker", "--loglevel", "INFO"]
