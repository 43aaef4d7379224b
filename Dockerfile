# syntax=docker/dockerfile:1
#
# tasks-server container image.
#   docker build -t tasks-server .
#   docker run -d -p 127.0.0.1:9220:9220 -v tasks-data:/data --stop-timeout 45 tasks-server
#
# Debian 13 (trixie) rather than 12: pycurl is built against Debian's libcurl (OpenSSL, with
# NTLM, which the PyPI pycurl wheel lacks), and bookworm's libcurl 7.88 signs AWS SigV4 requests
# wrongly when the query parameters are not sorted and has no HAPROXY_CLIENT_IP; trixie ships
# libcurl 8.14. Both stages use the same image, so the venv's interpreter path is the same.
ARG PYTHON_IMAGE=python:3.11-slim-trixie
# The package's version (tasks_server/__init__.py), for the image label. The builder stops when
# it differs from what the installed package says, and tests/unit/test_deployment.py checks
# this default, so the label cannot drift. A release build may pass it explicitly:
#   --build-arg TASKS_SERVER_VERSION="$(python -c 'import tasks_server; print(tasks_server.__version__)')"
ARG TASKS_SERVER_VERSION=0.1.0

FROM ${PYTHON_IMAGE} AS builder
ARG TASKS_SERVER_VERSION

# Unpinned on purpose: the base image fixes the Debian release, whose security updates we
# want; exact Debian versions would break the build at every point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libcurl4-openssl-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# The venv gets no pip or setuptools (about 25 MB): the base image's pip installs into it.
RUN python -m venv --without-pip /opt/tasks-server

WORKDIR /src
COPY pyproject.toml README.md ./
COPY tasks_server/ tasks_server/
# With the tracing extra (OTLP export). pycurl from source links the system libcurl; the build
# stops if the result lacks NTLM (i.e. if a prebuilt wheel with its own libcurl slipped in).
RUN --mount=type=cache,target=/root/.cache/pip \
    pip --python /opt/tasks-server/bin/python install --no-binary pycurl './[tracing]' \
    && /opt/tasks-server/bin/python -c "import pycurl, sys; sys.exit(0 if pycurl.version_info()[4] & pycurl.VERSION_NTLM else 'pycurl without NTLM: ' + pycurl.version)" \
    && test "$(/opt/tasks-server/bin/tasks-server --version)" = "tasks-server ${TASKS_SERVER_VERSION}"


FROM ${PYTHON_IMAGE}
ARG TASKS_SERVER_VERSION

LABEL org.opencontainers.image.title="tasks-server" \
      org.opencontainers.image.description="Self-hosted service that executes HTTP requests later: delays, exact times, retries, curl-level options, SQLite backups." \
      org.opencontainers.image.version="${TASKS_SERVER_VERSION}" \
      org.opencontainers.image.licenses="MIT"

# Runtime libraries only: libcurl (libcurl4t64 on trixie, chosen by apt) and the CA bundle.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid so a bind-mounted /data can be chowned to 10001:10001 on the host.
RUN groupadd --gid 10001 tasks \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
        --home-dir /data --shell /usr/sbin/nologin tasks \
    && install -d -o 10001 -g 10001 -m 0750 /data

COPY --from=builder /opt/tasks-server /opt/tasks-server

ENV PATH="/opt/tasks-server/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=9220 \
    PATH_SQLITE=/data/tasks.db \
    BACKUP_PATH_DIR_SQLITE=/data/backups

# The database, its generated key (tasks.db.key) and local backups live here.
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 9220

# No curl binary in the image: the interpreter probes /health on $PORT (200 only while the
# database answers; /status would say OK with a broken database) (https when TLS is on,
# without verification: the certificate names the public host, not 127.0.0.1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, ssl, sys, urllib.request as u; tls = bool(os.environ.get('PATH_TLS_CERT')); url = ('https' if tls else 'http') + '://127.0.0.1:' + (os.environ.get('PORT') or '9220') + '/health'; ctx = ssl._create_unverified_context() if tls else None; sys.exit(u.urlopen(url, timeout=4, context=ctx).status != 200)"]

# Exec form: the server is PID 1 and gets SIGTERM itself; it drains in-flight requests
# (up to 30 s) and attempts (up to 10 s) then exits 0, so give it a stop timeout of ~45 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tasks-server"]
CMD ["serve"]
