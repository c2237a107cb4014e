# syntax=docker/dockerfile:1
#
# streamprofile image: one static binary, every role is a subcommand
# (`docker run IMAGE ingest ...`, `... train`, `... score`, `... serve`, `... replay`).
#
#   docker build -t streamprofile:0.1.0 .
#
# The final stage is `scratch`: no shell, no package manager, no curl. A Dockerfile
# HEALTHCHECK needs a command inside the image, so there is none. Health is checked from
# outside through the admin listener (--admin-addr, :9090): GET /healthz (alive) and
# GET /readyz (ready) are the Kubernetes liveness and readiness probes (deploy/k8s), and
# Prometheus scrapes /metrics from the same port, alerting when a target is down
# (deploy/prometheus/alerts.yml). See deploy/README.md.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS builder
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# Dependencies first, so source edits do not invalidate the module download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# Set by BuildKit for the platform being built (docker buildx build --platform ...); the
# builder itself runs natively on the build machine and cross-compiles.
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/streamprofile ./cmd/streamprofile

# The root file system of the final image, assembled here because scratch has no shell:
# CA certificates, a writable /tmp, a data directory owned by the runtime user (a named
# volume mounted there starts with that ownership) and passwd/group entries for that user.
# COPY --from keeps the ownership and modes of what it copies from a stage.
RUN mkdir -p /rootfs/tmp /rootfs/etc/ssl/certs /rootfs/var/lib/streamprofile \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
    && chmod 1777 /rootfs/tmp \
    && chown 65532:65532 /rootfs/var/lib/streamprofile \
    && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >/rootfs/etc/passwd \
    && echo 'nonroot:x:65532:' >/rootfs/etc/group

FROM scratch
COPY --from=builder /rootfs/ /
COPY --from=builder /out/streamprofile /streamprofile
USER 65532:65532
# 8080: serve's HTTP API. 9090: every role's admin listener (/metrics, /healthz, /readyz).
EXPOSE 8080 9090
ENTRYPOINT ["/streamprofile"]
