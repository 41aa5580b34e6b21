ARG BASE_IMAGE=python:3.12-slim
# Multi-stage build of the urlhealth service.
#
# Anywhere with a registry:   docker build -t urlhealth .
# On machines with no registry (see scripts/container-smoke.sh), from a local Debian base:
#   podman --storage-driver vfs build --layers=false --format docker --isolation chroot --network host \
#     --build-arg BASE_IMAGE=localhost/python-base:bookworm \
#     -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
#     -t localhost/urlhealth:smoke .
# (--format docker keeps HEALTHCHECK: the OCI image format has no field for it; --layers=false
# because on vfs storage cached layers are slower than rebuilding.)
# Only python3 and the venv's own binaries are used, so both bases work
# (python:3.12-slim has 3.12; the Debian bookworm base has python3 3.11 and no `python`).

FROM ${BASE_IMAGE} AS build
RUN python3 -m venv /opt/venv
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so editing app/ does not reinstall them.
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt

# Then the project itself.
COPY README.md ./
COPY app/ ./app/
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/venv/bin/urlhealth --help >/dev/null


FROM ${BASE_IMAGE} AS runtime
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin urlhealth \
    && mkdir -p /app /data \
    && chown 10001:10001 /data
WORKDIR /app
COPY config/ ./config/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    URLHEALTH_HOST=0.0.0.0 \
    URLHEALTH_PORT=8000 \
    URLHEALTH_DATA_DIR=/data

# Jobs and results: the SQLite file /data/urlhealth.db (unless URLHEALTH_DATABASE_URL points
# elsewhere). A volume, so they outlive the container; owned by the service's user. Declared
# after the chown: a named volume starts as a copy of the image's /data, ownership included.
VOLUME /data

# The user created above, by number so Kubernetes runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000

# No curl in the image: probe /healthz with the venv's python3 and urllib; any error exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python3 -c "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('URLHEALTH_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)" || exit 1

# Exec form: urlhealth is PID 1 and gets SIGTERM itself, then drains within
# URLHEALTH_SHUTDOWN_GRACE_S and flushes results to the database (at most
# URLHEALTH_DB_FLUSH_TIMEOUT_S, 10 s). `docker stop` kills after 10 s unless told otherwise:
# give it more than grace + flush, e.g. `docker stop -t 30` (compose: stop_grace_period: 30s).
# One uvicorn worker: the results store lives in the process.
STOPSIGNAL SIGTERM
CMD ["urlhealth", "serve"]
