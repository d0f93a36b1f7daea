# syntax=docker/dockerfile:1
# workflow-api: multi-stage build, minimal non-root runtime image.
# Build from the repository root: docker build -f deploy/docker/workflow-api.Dockerfile .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# protoc is vendored (protoc-bin-vendored); nothing else to install.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wfe-api --bin workflow-api \
    && cp target/release/workflow-api /workflow-api

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /workflow-api /usr/local/bin/workflow-api
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/workflow-api"]
