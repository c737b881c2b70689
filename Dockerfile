# One image for every process of usage-bot. The default command is the worker;
# the same image runs the other two with a different command:
#   docker run IMAGE                      usage-bot run: the worker (polls, detects, posts)
#   docker run IMAGE usage-bot serve      the HTTP side on $PORT: /usage, buttons, /healthz, /metrics
#   docker run IMAGE usage-bot migrate    applies the store's migrations and exits
# compose.yaml runs all three against PostgreSQL. Configuration comes from the
# environment only (see .env.example); no secret is baked into the image.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Install the package (no dev extras) from a scratch folder, then drop the sources:
# the image holds the installed package and the usage-bot console script.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir . && rm -rf /src

# The rules file is read from the working directory (BOT_RULES_PATH=rules.yaml);
# compose.yaml mounts yours over it, so editing it needs no rebuild.
WORKDIR /app
COPY rules.yaml ./

# Run as a plain user. /data is the only place it may write: the SQLite file when
# DATABASE_URL is unset (mount a volume there to keep it).
RUN useradd --create-home --uid 10001 usagebot \
    && mkdir /data && chown usagebot:usagebot /data
ENV BOT_DB_PATH=/data/usage-bot.db
USER usagebot

EXPOSE 3000
CMD ["usage-bot", "run"]
