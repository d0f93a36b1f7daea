// Package orchestrator is workflow-api's client as RemediationOrchestrator would
// write it with grpc-go and the generated stubs of services/proto/go: one
// long-lived ClientConn with keepalive pings and a retry service config, a
// bearer token on every call, ExecuteWorkflow retried with the same idempotency
// key until the caller's deadline, and Watch followed from its resume token
// across disconnects.
package orchestrator

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"time"

	wfev1 "github.com/kubernaut/workflowexecution/services/proto/go/kubernaut/workflowexecution/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ServiceConfig retries UNAVAILABLE inside one call (grpc-go's retry support,
// on by default) for every method that is safe to send twice: ExecuteWorkflow
// (idempotency key), reads, Watch (until its first message), Cancel (terminal
// executions are returned as they are) and Preflight. ClearBlock is not in it:
// it is an audited operator action, sent once.
const ServiceConfig = `{
  "methodConfig": [{
    "name": [
      {"service": "kubernaut.workflowexecution.v1.WorkflowExecutionService", "method": "ExecuteWorkflow"},
      {"service": "kubernaut.workflowexecution.v1.WorkflowExecutionService", "method": "GetWorkflowExecution"},
      {"service": "kubernaut.workflowexecution.v1.WorkflowExecutionService", "method": "ListWorkflowExecutions"},
      {"service": "kubernaut.workflowexecution.v1.WorkflowExecutionService", "method": "WatchWorkflowExecutions"},
      {"service": "kubernaut.workflowexecution.v1.WorkflowExecutionService", "method": "CancelWorkflowExecution"},
      {"service": "kubernaut.workflowexecution.v1.WorkflowExecutionService", "method": "PreflightWorkflow"}
    ],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.2s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Keepalive pings an idle connection every 10 s (grpc-go's minimum), with or
// without open streams, so a half-open connection to a vanished API replica is
// noticed within Time+Timeout instead of at the next call.
var Keepalive = keepalive.ClientParameters{
	Time:                10 * time.Second,
	Timeout:             5 * time.Second,
	PermitWithoutStream: true,
}

// Dial opens the connection: keepalive, the retry service config and the
// bearer token. Plaintext, for the loopback stack; in a cluster the orchestrator
// passes credentials.NewTLS in extra (it replaces the insecure credentials).
func Dial(target, token string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(Bearer{Token: token, Insecure: true}),
		grpc.WithKeepaliveParams(Keepalive),
		grpc.WithDefaultServiceConfig(ServiceConfig),
	}
	return grpc.NewClient(target, append(opts, extra...)...)
}

// Bearer sends `authorization: Bearer <token>` on every call.
type Bearer struct {
	Token string
	// Insecure allows the token over plaintext (loopback only).
	Insecure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b Bearer) RequireTransportSecurity() bool { return !b.Insecure }

// Backoff between two ExecuteWorkflow calls: exponential from Base to Max
// with full jitter.
type Backoff struct {
	Base, Max time.Duration
}

// Delay before call n+1 (n counts from 1).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Max
	if n < 30 {
		d = min(b.Base<<(n-1), b.Max)
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// Execute sends req (and its idempotency key, which makes a repeat safe) until
// an answer that is not UNAVAILABLE, or until ctx's deadline: what
// RemediationOrchestrator does while workflow-api restarts. Every call has its
// own deadline (perCall) inside ctx's, and the service config retries inside
// each call. It returns the response, how many calls it made and the last error.
func Execute(ctx context.Context, c wfev1.WorkflowExecutionServiceClient, req *wfev1.ExecuteWorkflowRequest,
	perCall time.Duration, backoff Backoff) (*wfev1.ExecuteWorkflowResponse, int, error) {
	for calls := 1; ; calls++ {
		callCtx, cancel := context.WithTimeout(ctx, perCall)
		resp, err := c.ExecuteWorkflow(callCtx, req)
		cancel()
		if !retryable(ctx, err) {
			return resp, calls, err
		}
		if !pause(ctx, backoff.Delay(calls)) {
			return nil, calls, err
		}
	}
}

// retryable: the API is down or restarting (UNAVAILABLE), or one call ran out
// of its own deadline while the caller's has time left.
func retryable(ctx context.Context, err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.DeadlineExceeded:
		return ctx.Err() == nil
	default:
		return false
	}
}

// Follow watches from token (empty: the current state first) and hands every
// event to on, reconnecting with the last resume token when the stream breaks
// with UNAVAILABLE. It returns when on returns false (nil), when ctx ends, or
// on any other error. The token it returns resumes after the last event seen.
func Follow(ctx context.Context, c wfev1.WorkflowExecutionServiceClient, req *wfev1.WatchWorkflowExecutionsRequest,
	on func(*wfev1.WatchWorkflowExecutionsResponse) bool) (string, error) {
	token := req.GetResumeToken()
	for {
		r := proto.CloneOf(req)
		r.ResumeToken = token
		var again bool
		var err error
		token, again, err = followOnce(ctx, c, r, on)
		if !again || !pause(ctx, reconnectDelay) {
			return token, err
		}
	}
}

// followOnce runs one stream; again: it broke (UNAVAILABLE, or the server's
// clean end when it shuts down) and the caller may resume from token. The
// stream is cancelled when it returns, so nothing is left running.
func followOnce(ctx context.Context, c wfev1.WorkflowExecutionServiceClient, req *wfev1.WatchWorkflowExecutionsRequest,
	on func(*wfev1.WatchWorkflowExecutionsResponse) bool) (token string, again bool, err error) {
	token = req.GetResumeToken()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.WatchWorkflowExecutions(ctx, req)
	for err == nil {
		var ev *wfev1.WatchWorkflowExecutionsResponse
		if ev, err = stream.Recv(); err != nil {
			break
		}
		if ev.GetResumeToken() != "" {
			token = ev.GetResumeToken()
		}
		if !on(ev) {
			return token, false, nil
		}
	}
	broken := status.Code(err) == codes.Unavailable || errors.Is(err, io.EOF)
	return token, broken && ctx.Err() == nil, err
}

// reconnectDelay between two Watch streams, on top of the service config's
// retries of the call.
const reconnectDelay = 500 * time.Millisecond

// pause waits d; false when ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
