# syntax=docker/dockerfile:1
# agaobs-agent container image. Not built in this repository's CI (no container
# engine there); deploy/README.md says what was checked instead.
#
#   docker build -t ghcr.io/agaobs/agaobs-agent:$(cat VERSION) --build-arg VERSION=$(cat VERSION) --build-arg REVISION=$(git rev-parse HEAD) .
#
# The agent runs as root in the container with a bounded capability set (eBPF
# needs CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN; reading the producers' processes
# CAP_SYS_PTRACE): a non-root user cannot load the probes. See
# deploy/kubernetes/daemonset.yaml.

ARG GO_VERSION=1.26
ARG PYTHON_VERSION=3.11

# The agent, with cgo: the GPU collector dlopens libnvidia-ml through go-nvml.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# go-nvml's header marks many functions deprecated: no cgo warning per build.
ENV CGO_CFLAGS="-O2 -g -Wno-deprecated-declarations"
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=
ARG SOURCE_DATE_EPOCH
RUN make build man VERSION="${VERSION}" REVISION="${REVISION}" BRANCH= \
    && ./bin/agaobs-agent version

# The Python client (standard library only; its own PEP 517 backend, so no
# package index), as a wheel and unpacked for PYTHONPATH. The wheel is the pure
# py3-none-any one, the default (AGAOBS_BUILD_NATIVE=1 would add the forward
# marker library and make it a platform wheel).
FROM python:${PYTHON_VERSION}-slim-bookworm AS client
COPY clients/python /src/clients/python
RUN AGAOBS_BUILD_NATIVE=0 pip wheel --no-index --no-deps --wheel-dir /out/wheels /src/clients/python \
    && pip install --no-index --no-deps --no-compile --target /out/python /out/wheels/aga_observability-*.whl \
    && chmod -R a+rX /out

# Runtime: glibc for the cgo build and NVML; cp for the inference pods' init
# container; CA certificates for webhooks and Alertmanager over https.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/agaobs-agent /usr/local/bin/agaobs-agent
COPY --from=build /src/bin/man/man1 /usr/local/share/man/man1
COPY --from=client /out/python /usr/share/agaobs/python
COPY --from=client /out/wheels /usr/share/agaobs/wheels
COPY deploy/kubernetes/config/agaobs.yaml /etc/agaobs/agaobs.yaml
ENV AGAOBS_CONFIG=/etc/agaobs/agaobs.yaml
# /metrics and the health endpoints (the admin API stays on 127.0.0.1:8081).
EXPOSE 9090 8080
ENTRYPOINT ["agaobs-agent"]
CMD ["run", "--config", "/etc/agaobs/agaobs.yaml"]
