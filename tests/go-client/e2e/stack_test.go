package e2e

// The local stack, started the way `wfe dev` wires it (the same `wfe`
// subcommands, kubeconfig, token and audit files) but one process per
// component under this test's control: `wfe dev` stops everything when one
// component exits, and the retry test restarts workflow-api alone.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	// callerToken is the orchestrator's bearer token, callerIdentity what the
	// API records for it (e.g. as blockClearance.clearedBy).
	callerToken    = "go-orchestrator-token"
	callerIdentity = "remediation-orchestrator@go.e2e"
	jobAgentToken  = "go-job-agent-token"
	startTimeout   = 90 * time.Second
)

// apiFlags: the Rust e2e suite's small timings, so executions move fast. The
// Watch heartbeat is long on purpose: the keepalive test needs a stream with no
// traffic at all for longer than grpc-go's keepalive time (10 s), and the
// server's own heartbeats would be traffic.
var apiFlags = []string{
	"--heartbeat-interval", "500ms",
	"--lease-duration", "2s",
	"--ack-timeout", "1s",
	"--watch-heartbeat", "90s",
	"--lock-grace", "3s",
	"--cooldown", "1s",
	"--backoff-base", "1s",
	"--backoff-max", "4s",
	"--audit-resync-interval", "2s",
	"--shutdown-grace", "1s",
}

type proc struct {
	name string
	args []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// stack is sandbox, workflow-api and a job-agent on free loopback ports.
type stack struct {
	dir, wfe, kubeconfig string
	sandbox, grpc, admin string
	procs                map[string]*proc
}

func startStack() (*stack, error) {
	wfe, err := wfeBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wfe-go-e2e-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir, wfe: wfe, procs: map[string]*proc{}}
	for _, a := range []*string{&s.sandbox, &s.grpc, &s.admin} {
		if *a, err = freeAddr(); err != nil {
			return s, err
		}
	}
	if err := s.writeFiles(); err != nil {
		return s, err
	}
	if err := s.startSandbox(); err != nil {
		return s, err
	}
	if err := s.startAPI(); err != nil {
		return s, err
	}
	return s, s.startJobAgent()
}

func (s *stack) path(p string) string { return filepath.Join(s.dir, p) }

// writeFiles: kubeconfig and token files, as `wfe dev` writes them.
func (s *stack) writeFiles() error {
	s.kubeconfig = s.path("kubeconfig")
	files := map[string]string{
		"kubeconfig": fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n"+
			"    server: http://%s\nusers:\n- name: developer\n  user: {}\ncontexts:\n- name: sandbox\n"+
			"  context:\n    cluster: sandbox\n    user: developer\n    namespace: kubernaut-system\n"+
			"current-context: sandbox\n", s.sandbox),
		"callers":         callerToken + " " + callerIdentity + "\n",
		"agents":          jobAgentToken + " - job\n",
		"job-agent.token": jobAgentToken + "\n",
	}
	for name, body := range files {
		if err := os.WriteFile(s.path(name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *stack) startSandbox() error {
	p := s.add("sandbox", "sandbox", "--listen", s.sandbox, "--data-dir", s.path("sandbox-data"))
	return s.spawnReady(p, "http://"+s.sandbox+"/api/v1/namespaces/kubernaut-workflows/serviceaccounts/default")
}

func (s *stack) startAPI() error {
	args := append([]string{"api",
		"--grpc-addr", s.grpc,
		"--admin-addr", s.admin,
		"--caller-tokens-file", s.path("callers"),
		"--agent-tokens-file", s.path("agents"),
		"--audit-file", s.path("audit.jsonl"),
		"--instance-id", "workflow-api-go-e2e",
	}, apiFlags...)
	return s.spawnReady(s.add("workflow-api", args...), "http://"+s.admin+"/readyz")
}

func (s *stack) startJobAgent() error {
	admin, err := freeAddr()
	if err != nil {
		return err
	}
	p := s.add("job-agent", "job-agent",
		"--api-url", "http://"+s.grpc,
		"--token-file", s.path("job-agent.token"),
		"--admin-addr", admin,
		"--agent-id", "job-agent-go-e2e",
		"--drain-timeout-seconds", "2")
	return s.spawnReady(p, "http://"+admin+"/readyz")
}

func (s *stack) add(name string, args ...string) *proc {
	p := &proc{name: name, args: args, log: s.path(name + ".log")}
	s.procs[name] = p
	return p
}

// spawnReady starts p and polls url until it answers 200; a process that exits
// fails at once, with its log.
func (s *stack) spawnReady(p *proc, url string) error {
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	p.cmd = exec.Command(s.wfe, p.args...)
	p.cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig, "RUST_LOG=info")
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start-up:\n%s", p.name, tail(p.log, 40))
		default:
		}
		if r, err := http.Get(url); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s:\n%s", p.name, startTimeout, tail(p.log, 40))
}

// kill SIGKILLs a component (no drain) and waits until it is gone.
func (s *stack) kill(name string) {
	p := s.procs[name]
	if p == nil || p.cmd == nil || p.done == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// restartAPI starts workflow-api again, same address and files, and waits
// until it is ready.
func (s *stack) restartAPI() error {
	s.kill("workflow-api")
	return s.startAPI()
}

// stop kills every component, newest first, and removes the state unless keep.
func (s *stack) stop(keep bool) {
	for _, name := range []string{"job-agent", "workflow-api", "sandbox"} {
		s.kill(name)
	}
	if !keep {
		_ = os.RemoveAll(s.dir)
	}
}

// logs: the last lines of every component's log, for a failing test.
func (s *stack) logs() string {
	var b strings.Builder
	for _, name := range []string{"sandbox", "workflow-api", "job-agent"} {
		if p := s.procs[name]; p != nil {
			fmt.Fprintf(&b, "----- %s (last 40 lines of %s) -----\n%s\n", name, p.log, tail(p.log, 40))
		}
	}
	return b.String()
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeAddr: a loopback address whose port was free a moment ago. Components
// keep their address across restarts, so ports are picked, not 0.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// wfeBinary: $WFE_E2E_BIN, else `cargo build -p wfe-dev --bin wfe` (a no-op
// when fresh) and the executable cargo reports, as the Rust e2e harness does.
func wfeBinary() (string, error) {
	if p := os.Getenv("WFE_E2E_BIN"); p != "" {
		return p, nil
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		return "", err
	}
	cargo := os.Getenv("CARGO")
	if cargo == "" {
		cargo = "cargo"
	}
	cmd := exec.Command(cargo, "build", "-q", "-p", "wfe-dev", "--bin", "wfe",
		"--message-format", "json-render-diagnostics")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cargo build -p wfe-dev --bin wfe: %w\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m struct {
			Reason     string `json:"reason"`
			Executable string `json:"executable"`
			Target     struct {
				Name string `json:"name"`
			} `json:"target"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Reason == "compiler-artifact" &&
			m.Target.Name == "wfe" && m.Executable != "" {
			return m.Executable, nil
		}
	}
	return "", errors.New("cargo reported no wfe executable")
}
