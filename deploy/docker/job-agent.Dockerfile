# syntax=docker/dockerfile:1
# job-agent: multi-stage build, minimal non-root runtime image.
# Build from the repository root: docker build -f deploy/docker/job-agent.Dockerfile .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# protoc is vendored (protoc-bin-vendored); nothing else to install.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wfe-job-agent --bin job-agent \
    && cp target/release/job-agent /job-agent

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /job-agent /usr/local/bin/job-agent
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/job-agent"]
