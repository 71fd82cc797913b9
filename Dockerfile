# stockflow worker image (DESIGN.md section 1).
#
#   docker build -t stockflow .
#   docker run --rm -e STOCKFLOW_KAFKA_BOOTSTRAP=broker:9092 -p 6066:6066 stockflow
#
# Every dependency (rocksdict included) ships manylinux wheels, so the slim
# image needs no compiler. The image holds the installed package only; the
# source tree is deleted after `pip install .`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip install --no-cache-dir . \
    && cd / \
    && rm -rf /src

# Non-root runtime user; /data is the worker's state (RocksDB tables) and is
# created here so a fresh named volume mounted on it inherits the ownership.
RUN groupadd --system --gid 10001 stockflow \
    && useradd --system --uid 10001 --gid stockflow \
       --home-dir /home/stockflow --create-home --shell /usr/sbin/nologin stockflow \
    && mkdir -p /data \
    && chown stockflow:stockflow /data

# Container defaults: state on the volume, HTTP reachable from outside the
# container. Everything else comes from STOCKFLOW_* at run time.
ENV STOCKFLOW_DATA_DIR=/data \
    STOCKFLOW_WEB_BIND=0.0.0.0

USER stockflow
WORKDIR /home/stockflow
VOLUME ["/data"]

# Faust web: /metrics, /healthz, /ready, /atp/{sku}, ...
EXPOSE 6066

# No curl in the slim image: python's urllib. urlopen raises (exit 1) on
# connection errors and on non-2xx answers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('STOCKFLOW_WEB_PORT', '6066') + '/healthz', timeout=4)"]

ENTRYPOINT ["stockflow"]
CMD ["worker"]
