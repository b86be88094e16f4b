# pypi-proxy: the caching package-index proxy, with its cache on a volume.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /tmp/pypi-proxy
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY config ./config
RUN pip install . \
    && rm -rf /tmp/pypi-proxy \
    && useradd --system --uid 10001 --home-dir /nonexistent --no-create-home pypi-proxy \
    && mkdir -p /var/cache/pypi-proxy \
    && chown pypi-proxy /var/cache/pypi-proxy

WORKDIR /
USER 10001
VOLUME ["/var/cache/pypi-proxy"]
EXPOSE 3141

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3141/-/health', timeout=4)"]

ENTRYPOINT ["pypi-proxy", "serve", "--cache-dir", "/var/cache/pypi-proxy"]
