# The egobs image: control plane, access-log sink, echo backends and `egobs bootstrap` for
# compose.yaml. Installs the way the Makefile does (tests/stack/test_compose.py compares them):
# egobs with its pinned dependencies, then opentelemetry-proto put back over the stale copy
# xds-protos installs on top of it (the OTLP exporter fails to import otherwise).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/egobs \
    PATH=/opt/egobs/bin:$PATH

WORKDIR /src
# Only what the package build reads, so editing tests or docs does not rebuild this layer.
COPY pyproject.toml README.md ./
COPY egobs ./egobs

RUN python -m venv /opt/egobs \
 && python -m pip install -q --upgrade pip \
 && python -m pip install -q . \
 && OTEL_PROTO=$(sed -n 's/.*"opentelemetry-proto==\([0-9.]*\)".*/\1/p' pyproject.toml) \
 && python -m pip install -q --force-reinstall --no-deps opentelemetry-proto==$OTEL_PROTO \
 && egobs --version \
 && rm -rf /src

# Non-root; /bootstrap and /var/log/egobs are the mount points of the compose volumes, owned
# here so an empty named volume takes this ownership on first mount.
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin egobs \
 && mkdir -p /bootstrap /var/log/egobs \
 && chown egobs:egobs /bootstrap /var/log/egobs
USER egobs
WORKDIR /

CMD ["egobs", "--help"]
