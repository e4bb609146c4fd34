# mooring: build with the Rust toolchain, run on distroless (no shell, non-root).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY manifests/schema ./manifests/schema
RUN cargo build --release --locked --bin mooring

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mooring /usr/local/bin/mooring
# 65532 is distroless's `nonroot` user.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mooring"]
CMD ["run", "/manifests", "--listen", "0.0.0.0:8080"]
