# Build: docker build -t alert-domains --build-arg VERSION=$(git describe --always) .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/alert-domains/alert-domains/connector.Version=${VERSION}" \
      -o /out/alert-domains ./cmd/alert-domains \
 && mkdir -p /out/data/nats

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/alert-domains /usr/local/bin/alert-domains
COPY --from=build --chown=65532:65532 /out/data /var/lib/alert-domains
# Probes and metrics must be reachable from outside the container; the
# embedded NATS server (when NATS_URL is empty) stores under the volume.
ENV HTTP_LISTEN=:8080 \
    NATS_EMBEDDED_STORE_DIR=/var/lib/alert-domains/nats \
    LOG_FORMAT=json
VOLUME ["/var/lib/alert-domains"]
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["alert-domains"]
CMD ["serve"]
