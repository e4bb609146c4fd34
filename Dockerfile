# mooring: build with the Rust toolchain, run on distroless (no shell, non-root).
FROM rust:1.95-slim-bookworm AS build
# The git revision to bake in (`mooring --version`, /status): docker build
#   --build-arg MOORING_REVISION="$(git rev-parse --short=12 HEAD)" .
ARG MOORING_REVISION=unknown
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY manifests/schema ./manifests/schema
RUN MOORING_REVISION="${MOORING_REVISION}" cargo build --release --locked --bin mooring

FROM gcr.io/distroless/cc-debian12:nonroot
ARG MOORING_REVISION=unknown
LABEL org.opencontainers.image.title="mooring" \
      org.opencontainers.image.revision="${MOORING_REVISION}"
COPY --from=build /src/target/release/mooring /usr/local/bin/mooring
# 65532 is distroless's `nonroot` user.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mooring"]
CMD ["run", "/manifests", "--listen", "0.0.0.0:8080"]
