# kube-event-shipper: the image the Helm chart runs (helm/kube-event-shipper, values image.*).
#
#   docker build -t ghcr.io/kube-event-shipper/kube-event-shipper:0.1.0 .
#   docker run --rm ghcr.io/kube-event-shipper/kube-event-shipper:0.1.0 --help
#
# Two stages on the same pinned base: the first builds wheels for every dependency and the
# package and installs them into a virtualenv that has no pip or setuptools of its own; the second
# copies only that virtualenv, so no compiler, pip cache, wheel or source tree ships. The process
# runs as UID/GID 65532 (the chart's runAsUser), needs no shell, and writes only to its state
# directory and /tmp (the chart mounts emptyDirs there and makes the root filesystem read-only).
#
# EXTRAS picks the optional sink clients (pyproject.toml); what each adds to the image with none
# (podman image inspect, uncompressed): kafka's codecs (zstandard, lz4, snappy, crc32c) 34 MB,
# aws (boto3, botocore) 26 MB, gcp (google-cloud-pubsub, grpc) 15 MB; all of them together 79 MB.
#   docker build --build-arg EXTRAS=kafka -t my-registry/kube-event-shipper:0.1.0 .
# (EXTRAS= : none, the core sinks only)

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=aws,kafka,sls,gcp,loki,rabbitmq
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The dependencies first, from pyproject.toml alone (an empty package and README stand in for
# the sources): this layer is built again only when pyproject.toml or EXTRAS change, not on every
# edit of the code. The virtualenv is made without pip; the build stage's pip installs into it.
# The Kubernetes client's asyncio copy of itself (kubernetes/aio, about 70 MB with its bytecode)
# is removed: the shipper uses the synchronous client only.
COPY pyproject.toml ./
RUN mkdir shipper && touch shipper/__init__.py README.md \
 && pip wheel --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}" \
 && rm /wheels/kube_event_shipper-*.whl \
 && python -m venv --without-pip /opt/kube-event-shipper \
 && pip --python /opt/kube-event-shipper/bin/python install --no-index --find-links /wheels /wheels/*.whl \
 && rm -rf /wheels shipper README.md build ./*.egg-info \
 && rm -rf /opt/kube-event-shipper/lib/python3.11/site-packages/kubernetes/aio
# Then the package itself (pip compiles its .py files: the root filesystem is read-only at run
# time, so nothing could cache bytecode later).
COPY README.md ./
COPY shipper ./shipper
RUN pip --python /opt/kube-event-shipper/bin/python install --no-deps . \
 && find /opt/kube-event-shipper -depth -type d -name tests -path '*/site-packages/*/tests' \
      -exec rm -rf {} + \
 && mkdir /state

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kube-event-shipper" \
      org.opencontainers.image.description="Watch Kubernetes Events and ship every one of them, once, to the stores and chats you already run." \
      org.opencontainers.image.source="https://github.com/kube-event-shipper/kube-event-shipper" \
      org.opencontainers.image.licenses="Apache-2.0"
# The base image's own pip, setuptools and wheel go too: nothing installs packages at run time.
# (Their bytes stay in the base's layers; what this removes is the tools, not the size.)
RUN for d in /usr/local/lib/python3.11/site-packages /usr/lib/python3/dist-packages; do \
      rm -rf "$d"/pip "$d"/pip-* "$d"/setuptools "$d"/setuptools-* "$d"/wheel "$d"/wheel-* \
             "$d"/_distutils_hack "$d"/pkg_resources "$d"/distutils-precedence.pth; \
    done \
 && rm -f /usr/local/bin/pip /usr/local/bin/pip3* /usr/bin/pip /usr/bin/pip3* /usr/local/bin/wheel
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
