# One image for every ftq process. The default command serves the API; docker-compose.yml and
# k8s/ override it for the migration step, the Celery worker pools, beat, flower and the emulator.
#
#   docker build -t ghcr.io/ftq/ftq:0.1.0 .
#
# Stage 1 installs the project and every dependency into a virtualenv; pip builds the wheels
# (the project's, and any dependency's that has none for this platform) with a compiler at hand.
# Stage 2 copies only that virtualenv onto a clean python:3.11-slim: no compiler, no pip cache,
# no source tree, and it runs as an unprivileged numeric user (10001) so Kubernetes'
# runAsNonRoot can verify it.

FROM python:3.11-slim AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"
# hadolint ignore=DL3013
RUN pip install --upgrade pip setuptools wheel

WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY shared/ shared/
COPY services/ services/
COPY migrations/ migrations/

# flower (the Celery dashboard) is not a project dependency; it is baked into the same image so
# the `flower` service can import the project's Celery app. pip builds a wheel for the project
# (and for any dependency published only as an sdist) here, where the compiler is.
ARG FLOWER_VERSION=2.2.0
# The GPU worker's image adds the local provider: `docker build --build-arg FTQ_EXTRAS=local`.
ARG FTQ_EXTRAS=""
RUN pip install ".[server]" "flower==${FLOWER_VERSION}" \
    && if [ -n "${FTQ_EXTRAS}" ]; then pip install ".[server,${FTQ_EXTRAS}]"; fi


FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="ftq" \
      org.opencontainers.image.description="Fine-tuning job gateway: API, Celery workers, beat"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}" \
    FTQ_DATA_DIR=/data \
    FTQ_BLOB_DIR=/data/blobs

# /data is where a volume holding the dataset blobs is mounted; owning it here means a fresh
# named Docker volume starts out writable by the ftq user.
RUN groupadd --system --gid 10001 ftq \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/ftq --create-home \
        --shell /usr/sbin/nologin ftq \
    && mkdir -p /data/blobs \
    && chown -R 10001:10001 /data

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

EXPOSE 8000
CMD ["uvicorn", "ftq.services.api.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
