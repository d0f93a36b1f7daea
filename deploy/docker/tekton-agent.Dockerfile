# syntax=docker/dockerfile:1
# tekton-agent: multi-stage build, minimal non-root runtime image.
# Build from the repository root: docker build -f deploy/docker/tekton-agent.Dockerfile .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# protoc is vendored (protoc-bin-vendored); nothing else to install.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wfe-tekton-agent --bin tekton-agent \
    && cp target/release/tekton-agent /tekton-agent

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /tekton-agent /usr/local/bin/tekton-agent
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tekton-agent"]
