// Package e2e drives workflow-api with the Go client RemediationOrchestrator
// would write (package orchestrator: grpc-go, the generated stubs, keepalive,
// a retry service config) against the local stack this test starts on
// loopback: sandbox, workflow-api and a job-agent, the `wfe` binary's
// components (see stack_test.go).
//
//	cd tests/go-client && go test ./...      # tests/run does it after the Rust suite
//
// WFE_E2E_BIN=<path to wfe> skips the cargo build; WFE_GO_E2E_KEEP=1 keeps the
// stack's directory (logs, audit file).
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	wfev1 "github.com/kubernaut/workflowexecution/services/proto/go/kubernaut/workflowexecution/v1"
	"github.com/kubernaut/workflowexecution/tests/go-client/orchestrator"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// image: digest-pinned; the sandbox runs no containers, any valid digest works.
const image = "ghcr.io/kubernaut/workflows/restart-deployment@sha256:" +
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const phaseTimeout = 60 * time.Second

var (
	st *stack
	// grpcErrors: what grpc-go logs at error level (e.g. a GOAWAY too_many_pings).
	grpcErrors lockedBuffer
)

func TestMain(m *testing.M) {
	// Before any grpc-go activity: SetLoggerV2 is not safe to call later.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.MultiWriter(os.Stderr, &grpcErrors)))
	s, err := startStack()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the stack: %v\n", err)
		if s != nil {
			fmt.Fprint(os.Stderr, s.logs())
			s.stop(false)
		}
		os.Exit(1)
	}
	st = s
	code := m.Run()
	if code != 0 {
		fmt.Fprint(os.Stderr, st.logs())
	}
	st.stop(os.Getenv("WFE_GO_E2E_KEEP") != "")
	os.Exit(code)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// dial: the orchestrator's connection to target, with a stats handler that
// counts attempts and connections.
func dial(t *testing.T, target string) (wfev1.WorkflowExecutionServiceClient, *callStats) {
	t.Helper()
	stats := newCallStats()
	conn, err := orchestrator.Dial(target, callerToken,
		grpc.WithStatsHandler(stats), grpc.WithChainUnaryInterceptor(stats.intercept))
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return wfev1.NewWorkflowExecutionServiceClient(conn), stats
}

// request: a job on target that runs for SANDBOX_DURATION (1 s) and ends as
// SANDBOX_OUTCOME says (succeed when empty), with an execution deadline.
func request(target, key, outcome string) *wfev1.ExecuteWorkflowRequest {
	slug := strings.ToLower(strings.NewReplacer("/", "-").Replace(target))
	params := map[string]string{"SANDBOX_DURATION": "1s"}
	if outcome != "" {
		params["SANDBOX_OUTCOME"] = outcome
	}
	return &wfev1.ExecuteWorkflowRequest{
		IdempotencyKey: key,
		Spec: &wfev1.ExecutionSpec{
			RemediationRequestRef: &wfev1.RemediationRequestReference{
				Name: "rr-" + slug, Namespace: "kubernaut-system", Uid: key,
			},
			WorkflowRef: &wfev1.WorkflowReference{
				WorkflowId: "restart-deployment", WorkflowName: "restart-deployment",
				ActionType: "RestartDeployment", Version: "1.0.0", ContainerImage: image,
			},
			ExecutionEngine: "job",
			TargetResource:  target,
			Parameters:      params,
			ExecutionConfig: &wfev1.ExecutionConfig{
				Deadline: &wfev1.ExecutionConfig_Timeout{Timeout: durationpb.New(10 * time.Minute)},
			},
			Confidence: 0.9,
			Rationale:  "Go client end-to-end test",
		},
	}
}

// execute: one ExecuteWorkflow as the orchestrator sends it (retried while
// UNAVAILABLE, 30 s in all, 5 s a call).
func execute(t *testing.T, c wfev1.WorkflowExecutionServiceClient, req *wfev1.ExecuteWorkflowRequest) *wfev1.ExecuteWorkflowResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, _, err := orchestrator.Execute(ctx, c, req, 5*time.Second, backoff)
	if err != nil {
		t.Fatalf("ExecuteWorkflow on %s: %v", req.GetSpec().GetTargetResource(), err)
	}
	return resp
}

var backoff = orchestrator.Backoff{Base: 200 * time.Millisecond, Max: 2 * time.Second}

// waitPhase polls GetWorkflowExecution until the execution reaches phase.
func waitPhase(t *testing.T, c wfev1.WorkflowExecutionServiceClient, name string, phase wfev1.Phase) *wfev1.WorkflowExecution {
	t.Helper()
	deadline := time.Now().Add(phaseTimeout)
	var last *wfev1.WorkflowExecution
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := c.GetWorkflowExecution(ctx, &wfev1.GetWorkflowExecutionRequest{Name: name})
		cancel()
		if err == nil {
			last = r.GetExecution()
			if last.GetStatus().GetPhase() == phase {
				return last
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not reach %s within %s; last: %v", name, phase, phaseTimeout, last.GetStatus())
	return nil
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExecuteIsRetriedOnUnavailableWithItsIdempotencyKeyAcrossAnAPIRestart(t *testing.T) {
	c, stats := dial(t, st.grpc)
	req := request("default/Deployment/go-retry", "rr-go-retry-uid", "")
	method := wfev1.WorkflowExecutionService_ExecuteWorkflow_FullMethodName

	st.kill("workflow-api")
	// The deadline bounds the retries: with the API down the call gives up in time.
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	began := time.Now()
	_, _, err := orchestrator.Execute(short, c, req, time.Second, backoff)
	cancel()
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("with the API down: want UNAVAILABLE or DEADLINE_EXCEEDED, got %v", err)
	}
	if took := time.Since(began); took > 4*time.Second {
		t.Fatalf("the 2 s deadline was not kept: %s", took)
	}

	type result struct {
		resp  *wfev1.ExecuteWorkflowResponse
		calls int
		err   error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	callsBefore, attemptsBefore := stats.callsOf(method), stats.beginsOf(method)
	refusedBefore, failedBefore := stats.unavailableCallsOf(method), stats.unavailableOf(method)
	go func() {
		resp, calls, err := orchestrator.Execute(ctx, c, req, 5*time.Second, backoff)
		done <- result{resp, calls, err}
	}()
	// Two calls, each with its service-config retries, refused before the API is back.
	eventually(t, 60*time.Second, "two ExecuteWorkflow calls failing UNAVAILABLE", func() bool {
		return stats.unavailableCallsOf(method) >= refusedBefore+2
	})
	if err := st.startAPI(); err != nil {
		t.Fatalf("restarting workflow-api: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("ExecuteWorkflow across the restart: %v", r.err)
	}
	if r.resp.GetDisposition() != wfev1.Disposition_DISPOSITION_CREATED {
		t.Fatalf("want CREATED, got %v", r.resp)
	}
	first := r.resp.GetExecution()
	calls, attempts := stats.callsOf(method)-callsBefore, stats.beginsOf(method)-attemptsBefore
	// Attempts: grpc-go's stats.Begin, one per retry of the service config, none of
	// them transparent (an attempt refused at pick time reports no End).
	t.Logf("created %s: %d calls with the same key, %d attempts (%d ended UNAVAILABLE)",
		first.GetName(), calls, attempts, stats.unavailableOf(method)-failedBefore)
	if calls != r.calls || calls < 3 || attempts <= calls {
		t.Fatalf("want >= 3 calls (2 refused, 1 answered), each retried by the service config: "+
			"%d calls (Execute says %d), %d attempts", calls, r.calls, attempts)
	}

	// The answer was lost and the API restarted: the same key returns the same
	// execution, from what was persisted.
	if err := st.restartAPI(); err != nil {
		t.Fatalf("restarting workflow-api: %v", err)
	}
	again := execute(t, c, req)
	if again.GetDisposition() != wfev1.Disposition_DISPOSITION_ALREADY_EXISTED {
		t.Fatalf("the same idempotency key after a restart: want ALREADY_EXISTED, got %v", again)
	}
	if again.GetExecution().GetName() != first.GetName() || again.GetExecution().GetUid() != first.GetUid() {
		t.Fatalf("another execution for the same key: %s/%s, first %s/%s", again.GetExecution().GetName(),
			again.GetExecution().GetUid(), first.GetName(), first.GetUid())
	}
	waitPhase(t, c, first.GetName(), wfev1.Phase_PHASE_COMPLETED)
}

func TestWatchIsFollowedAndResumedFromItsToken(t *testing.T) {
	c, _ := dial(t, st.grpc)
	target := "default/Deployment/go-watch"
	watch := &wfev1.WatchWorkflowExecutionsRequest{TargetResource: target}
	ctx, cancel := context.WithTimeout(context.Background(), 2*phaseTimeout)
	defer cancel()

	token, err := orchestrator.Follow(ctx, c, watch, func(ev *wfev1.WatchWorkflowExecutionsResponse) bool {
		if ev.GetType() == wfev1.WatchEventType_WATCH_EVENT_TYPE_ADDED {
			t.Errorf("a new target has no executions, got %v", ev)
		}
		return ev.GetType() != wfev1.WatchEventType_WATCH_EVENT_TYPE_SYNCED
	})
	if err != nil || token == "" {
		t.Fatalf("watch until SYNCED: token %q, %v", token, err)
	}
	slow := request(target, "rr-go-watch-uid", "")
	slow.Spec.Parameters["SANDBOX_DURATION"] = "3s"
	name := execute(t, c, slow).GetExecution().GetName()

	// Follow until Running, then disconnect (Follow returns, its stream ends).
	watch.ResumeToken = token
	token, err = orchestrator.Follow(ctx, c, watch, func(ev *wfev1.WatchWorkflowExecutionsResponse) bool {
		return ev.GetExecution().GetStatus().GetPhase() != wfev1.Phase_PHASE_RUNNING
	})
	if err != nil {
		t.Fatalf("watch until Running: %v", err)
	}

	// Resume: only what changed after the token, up to Completed.
	watch.ResumeToken = token
	var seen []string
	_, err = orchestrator.Follow(ctx, c, watch, func(ev *wfev1.WatchWorkflowExecutionsResponse) bool {
		if ev.GetType() == wfev1.WatchEventType_WATCH_EVENT_TYPE_HEARTBEAT {
			return true
		}
		phase := ev.GetExecution().GetStatus().GetPhase()
		seen = append(seen, fmt.Sprintf("%s %s %s", ev.GetType(), ev.GetExecution().GetName(), phase))
		return phase != wfev1.Phase_PHASE_COMPLETED
	})
	if err != nil {
		t.Fatalf("resumed watch: %v (saw %v)", err, seen)
	}
	for _, ev := range seen {
		if !strings.HasPrefix(ev, "WATCH_EVENT_TYPE_MODIFIED "+name+" ") || strings.HasSuffix(ev, "PENDING") {
			t.Fatalf("after the token only %s's later changes, saw %v", name, seen)
		}
	}
	t.Logf("resumed: %v", seen)

	// Follow across an API restart: the stream breaks, Follow reconnects with its
	// token, which the new process does not know: RESET, the state now, SYNCED.
	seen = nil
	followed := make(chan error, 1)
	go func() {
		_, err := orchestrator.Follow(ctx, c, watch, func(ev *wfev1.WatchWorkflowExecutionsResponse) bool {
			seen = append(seen, fmt.Sprintf("%s %s %s", ev.GetType(), ev.GetExecution().GetName(),
				ev.GetExecution().GetStatus().GetPhase()))
			return len(seen) < 3
		})
		followed <- err
	}()
	if err := st.restartAPI(); err != nil {
		t.Fatalf("restarting workflow-api: %v", err)
	}
	if err := <-followed; err != nil {
		t.Fatalf("following across the restart: %v (saw %v)", err, seen)
	}
	want := []string{"WATCH_EVENT_TYPE_RESET  PHASE_UNSPECIFIED", "WATCH_EVENT_TYPE_ADDED " + name + " PHASE_COMPLETED",
		"WATCH_EVENT_TYPE_SYNCED  PHASE_UNSPECIFIED"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Fatalf("across the restart: want %v, saw %v", want, seen)
	}
}

func TestCancelStopsARunningExecution(t *testing.T) {
	c, _ := dial(t, st.grpc)
	name := execute(t, c, request("default/Deployment/go-cancel", "rr-go-cancel-uid", "hang")).GetExecution().GetName()
	waitPhase(t, c, name, wfev1.Phase_PHASE_RUNNING)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.CancelWorkflowExecution(ctx, &wfev1.CancelWorkflowExecutionRequest{
		Name: name, Reason: "the orchestrator closed the remediation request",
	})
	if err != nil {
		t.Fatalf("CancelWorkflowExecution: %v", err)
	}
	failed := waitPhase(t, c, name, wfev1.Phase_PHASE_FAILED)
	if r := failed.GetStatus().GetFailureDetails().GetReason(); r != wfev1.FailureReason_FAILURE_REASON_CANCELLED {
		t.Fatalf("want CANCELLED, got %v", failed.GetStatus().GetFailureDetails())
	}
}

func TestClearBlockLiftsAnExecutionFailureBlock(t *testing.T) {
	c, _ := dial(t, st.grpc)
	target := "default/Deployment/go-block"
	failing := execute(t, c, request(target, "rr-go-block-1", "fail:2")).GetExecution().GetName()
	waitPhase(t, c, failing, wfev1.Phase_PHASE_FAILED)

	blocked := execute(t, c, request(target, "rr-go-block-2", ""))
	if blocked.GetDisposition() != wfev1.Disposition_DISPOSITION_SKIPPED ||
		blocked.GetSkipDetails().GetReason() != wfev1.BlockReason_BLOCK_REASON_PREVIOUS_EXECUTION_FAILED {
		t.Fatalf("want SKIPPED PreviousExecutionFailed, got %v", blocked)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clear := &wfev1.ClearBlockRequest{TargetResource: target, Reason: "looks fine"}
	_, err := c.ClearBlock(ctx, clear)
	if field := badRequestField(err); status.Code(err) != codes.InvalidArgument || field != "reason" {
		t.Fatalf("a short reason: want INVALID_ARGUMENT naming reason, got %v (field %q)", err, field)
	}
	clear.Reason = "the deployment was inspected by hand and rolled back to the last good revision"
	cleared, err := c.ClearBlock(ctx, clear)
	if err != nil {
		t.Fatalf("ClearBlock: %v", err)
	}
	if got := cleared.GetExecution(); got.GetName() != failing ||
		got.GetStatus().GetBlockClearance().GetClearedBy() != callerIdentity {
		t.Fatalf("want %s cleared by %s, got %v", failing, callerIdentity, got)
	}
	again := execute(t, c, request(target, "rr-go-block-3", ""))
	if again.GetDisposition() != wfev1.Disposition_DISPOSITION_CREATED {
		t.Fatalf("after ClearBlock: want CREATED, got %v", again)
	}
	waitPhase(t, c, again.GetExecution().GetName(), wfev1.Phase_PHASE_COMPLETED)
}

// badRequestField: the first field violation of err's google.rpc.BadRequest.
func badRequestField(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

// idle: how long the Watch stream stays without a single message; grpc-go
// pings after 10 s without traffic, so about 4 pings.
const idle = 45 * time.Second

func TestKeepalivePingsOnAnIdleWatchAreNeverRefused(t *testing.T) {
	p, err := startProxy(st.grpc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	c, stats := dial(t, p.addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.WatchWorkflowExecutions(ctx, &wfev1.WatchWorkflowExecutionsRequest{
		TargetResource: "default/Deployment/go-idle",
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := stream.Recv(); err != nil || ev.GetType() != wfev1.WatchEventType_WATCH_EVENT_TYPE_SYNCED {
		t.Fatalf("want SYNCED first, got %v, %v", ev, err)
	}
	pings0, _, _ := p.counts.snapshot()
	broken := make(chan error, 1)
	go func() {
		ev, err := stream.Recv()
		broken <- fmt.Errorf("the idle stream ended or spoke: %v, %v", ev, err)
	}()
	// The idle period is what is measured; the stream's end would fail it early.
	select {
	case err := <-broken:
		t.Fatal(err)
	case <-time.After(idle):
	}
	pings, acks, goAways := p.counts.snapshot()
	t.Logf("over %s idle: %d keepalive pings, %d acks, GOAWAYs %v", idle, pings-pings0, acks, goAways)
	if pings-pings0 < 3 {
		t.Fatalf("grpc-go sent %d keepalive pings in %s (Time %s): keepalive is off",
			pings-pings0, idle, orchestrator.Keepalive.Time)
	}
	if acks < pings {
		t.Fatalf("the server acknowledged %d of %d pings", acks, pings)
	}
	if len(goAways) > 0 || strings.Contains(grpcErrors.String(), "too_many_pings") {
		t.Fatalf("the server sent GOAWAY: %v\n%s", goAways, grpcErrors.String())
	}
	if b, e := stats.conns(); b != 1 || e != 0 {
		t.Fatalf("want the one connection kept, got %d opened, %d ended", b, e)
	}
}
