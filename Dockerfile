# syntax=docker/dockerfile:1@sha256:ecfaec9ed6d810b56388c508f4121597bfbba70d41a6dfeee4d8cad5f295fc32
# Every image this build pulls is pinned by digest (the tag stays for readers): a build uses
# exactly the images reviewed, and a tag moved upstream changes nothing until the pin does.
# To update one (a new Rust release, or a tag rebuilt with Debian's security fixes), resolve
# the tag to its multi-platform index digest, replace the part after `@sha256:`, rebuild and
# run the tests and deploy/check:
#   docker buildx imagetools inspect rust:1.95-bookworm --format '{{json .Manifest.Digest}}'
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot --format '{{json .Manifest.Digest}}'
#   docker buildx imagetools inspect docker/dockerfile:1 --format '{{json .Manifest.Digest}}'
# (`crane digest <image>:<tag>` prints the same). Index digests cover every platform, so one
# pin serves linux/amd64 and linux/arm64.
#
# Both platforms, built on the build machine's own (no emulation), labelled:
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE=https://<where this repository lives> -t opencti-connectors .
# The image for one official connector (README, "Migrating"): the same, plus
#   --target ipinfo -t opencti-connectors-ipinfo     (ipsum, riskiq, lastinfosec, ivre alike)

# Build: on the build platform, cross-compiling for the target platform's architecture.
FROM --platform=$BUILDPLATFORM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
ARG TARGETARCH
ARG BUILDARCH
# cargo-auditable embeds the dependency list in the binary (section `.dep-v0`), where image
# scanners (Trivy, Grype, Syft) read it. The target's C toolchain comes from Debian, whose
# release the pinned image fixes: jemalloc and ring compile C for the target, and the cross
# gcc links. Rust's standard library for the target comes with rustup.
# hadolint ignore=DL3008
RUN set -eu; \
    cargo install cargo-auditable --locked --version 0.7.7; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; gnu=x86-64-linux-gnu ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu ;; \
      *) echo "TARGETARCH $TARGETARCH: expected amd64 or arm64" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-$gnu" "libc6-dev-$TARGETARCH-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$triple"; \
    echo "$triple" > /target-triple
# The linker and C compiler of each target (the native gcc has these names too), and a
# binary stripped of its symbols, which keeps the `.dep-v0` section.
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_gnu=x86_64-linux-gnu-ar \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# `#[derive(Keys)]`, a proc-macro of the workspace the daemon builds with.
COPY macros ./macros
# The manifest names the benches and the test support crate (a dev-dependency and workspace
# member): cargo reads them to load it, never builds them here.
COPY benches ./benches
COPY tests/support ./tests/support
# jemalloc fixes its page size when it is built, and cannot probe it when cross-compiled.
# arm64 kernels run with 4, 16 or 64 KiB pages (RHEL's use 64 KiB): built for 64 KiB
# (lg 16) it runs on all three, where 4 KiB would crash on the larger ones.
RUN set -eu; \
    triple="$(cat /target-triple)"; \
    if [ "$TARGETARCH" = arm64 ]; then export JEMALLOC_SYS_WITH_LG_PAGE=16; fi; \
    cargo auditable build --release --locked --target "$triple"; \
    cp "target/$triple/release/opencti-connectors" /opencti-connectors

# Run: distroless (glibc, CA certificates, no shell), as the non-root user 65532; the
# platform's own variant of the pinned index.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS daemon
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="opencti-connectors" \
      org.opencontainers.image.description="One daemon hosting OpenCTI connectors (IPinfo, IVRE, RiskIQ PassiveTotal, LastInfoSec, IPsum)" \
      org.opencontainers.image.source="$SOURCE" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opencti-connectors /usr/local/bin/opencti-connectors
# /config/config.yml is read when present; otherwise the environment alone configures it.
WORKDIR /config
USER 65532:65532
EXPOSE 9095
# /healthz on the loopback, at the port of DAEMON_LISTEN (default 9095), or of
# CONNECTOR_METRICS_PORT for a drop-in.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/opencti-connectors", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/opencti-connectors"]
CMD ["run"]

# One image per official connector, for what passes no command (the integration manager,
# the community Helm chart): the daemon as `run --as <connector>`.
FROM daemon AS ipinfo
LABEL org.opencontainers.image.title="opencti-connectors-ipinfo"
ENV OPENCTI_CONNECTORS_AS=ipinfo

FROM daemon AS ipsum
LABEL org.opencontainers.image.title="opencti-connectors-ipsum"
ENV OPENCTI_CONNECTORS_AS=ipsum

FROM daemon AS riskiq
LABEL org.opencontainers.image.title="opencti-connectors-riskiq"
ENV OPENCTI_CONNECTORS_AS=riskiq

FROM daemon AS lastinfosec
LABEL org.opencontainers.image.title="opencti-connectors-lastinfosec"
ENV OPENCTI_CONNECTORS_AS=lastinfosec

FROM daemon AS ivre
LABEL org.opencontainers.image.title="opencti-connectors-ivre"
ENV OPENCTI_CONNECTORS_AS=ivre

# The default target: every connector, configured by config.yml and the environment.
FROM daemon
