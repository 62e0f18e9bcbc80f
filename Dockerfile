# kube-event-shipper: the image the Helm chart runs (helm/kube-event-shipper, values image.*).
#
#   docker build -t ghcr.io/kube-event-shipper/kube-event-shipper:0.1.0 .
#   docker run --rm ghcr.io/kube-event-shipper/kube-event-shipper:0.1.0 --help
#
# Two stages on the same pinned base: the first builds wheels for the package and every
# dependency and installs them into a virtualenv; the second copies only that virtualenv, so no
# compiler, pip cache or source tree ships. The process runs as UID/GID 65532 (the chart's
# runAsUser), needs no shell, and writes only to its state directory and /tmp (the chart mounts
# emptyDirs there and makes the root filesystem read-only).

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shipper ./shipper
# Wheels first (one layer you can inspect), then a virtualenv with nothing but those wheels.
# The extras are in: SigV4 for Amazon OpenSearch; the snappy/lz4/zstd codecs and a C CRC-32C
# for Kafka; lz4 for SLS; Google's Pub/Sub client; snappy (cramjam) for Loki; pika for RabbitMQ.
RUN pip wheel --wheel-dir /wheels '.[aws,kafka,sls,gcp,loki,rabbitmq]' \
 && python -m venv /opt/kube-event-shipper \
 && /opt/kube-event-shipper/bin/pip install --no-index --find-links /wheels \
      'kube-event-shipper[aws,kafka,sls,gcp,loki,rabbitmq]' \
 && /opt/kube-event-shipper/bin/pip uninstall --yes pip \
 && /opt/kube-event-shipper/bin/python -m compileall -q /opt/kube-event-shipper \
 && mkdir /state

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kube-event-shipper" \
      org.opencontainers.image.description="Watch Kubernetes Events and ship every one of them, once, to the stores and chats you already run." \
      org.opencontainers.image.source="https://github.com/kube-event-shipper/kube-event-shipper" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/kube-event-shipper /opt/kube-event-shipper
ENV PATH=/opt/kube-event-shipper/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KES_STATE_DIR=/var/lib/kube-event-shipper
# The state directory exists (and belongs to the shipper) also when nothing is mounted there.
COPY --from=build --chown=65532:65532 /state /var/lib/kube-event-shipper
USER 65532:65532
WORKDIR /var/lib/kube-event-shipper
EXPOSE 8080
ENTRYPOINT ["kube-event-shipper"]
