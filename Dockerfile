# syntax=docker/dockerfile:1@sha256:ecfaec9ed6d810b56388c508f4121597bfbba70d41a6dfeee4d8cad5f295fc32
# Every image this build pulls is pinned by digest (the tag stays for readers): a build uses
# exactly the images reviewed, and a tag moved upstream changes nothing until the pin does.
# To update one (a new Rust release, or a tag rebuilt with Debian's security fixes), resolve
# the tag to its multi-platform index digest, replace the part after `@sha256:`, rebuild and
# run the tests and deploy/check:
#   docker buildx imagetools inspect rust:1.95-bookworm --format '{{json .Manifest.Digest}}'
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot --format '{{json .Manifest.Digest}}'
#   docker buildx imagetools inspect docker/dockerfile:1 --format '{{json .Manifest.Digest}}'
# (`crane digest <image>:<tag>` prints the same).

# Build: a release binary from the locked dependencies.
FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/opencti-connectors

# Run: distroless (glibc, CA certificates, no shell), as the non-root user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
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
