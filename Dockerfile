# syntax=docker/dockerfile:1
# Build: a release binary from the locked dependencies.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/opencti-connectors

# Run: distroless (glibc, CA certificates, no shell), as the non-root user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/opencti-connectors /usr/local/bin/opencti-connectors
# /config/config.yml is read when present; otherwise the environment alone configures it.
WORKDIR /config
USER 65532:65532
ENV DAEMON_LISTEN=0.0.0.0:9095
EXPOSE 9095
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/opencti-connectors", "healthcheck", "--url", "http://127.0.0.1:9095/healthz"]
ENTRYPOINT ["/usr/local/bin/opencti-connectors"]
CMD ["run"]
