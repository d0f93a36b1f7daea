package e2e

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// callStats is a grpc-go stats handler: attempts per method (each retry of the
// service config is one), attempts that ended UNAVAILABLE, connections opened
// and ended.
type callStats struct {
	mu                   sync.Mutex
	begins, unavailable  map[string]int
	calls, refusedCalls  map[string]int
	connBegins, connEnds int
}

func newCallStats() *callStats {
	return &callStats{begins: map[string]int{}, unavailable: map[string]int{},
		calls: map[string]int{}, refusedCalls: map[string]int{}}
}

// intercept counts the application's calls (a call's retries are below it).
func (s *callStats) intercept(ctx context.Context, method string, req, reply any,
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	if status.Code(err) == codes.Unavailable {
		s.refusedCalls[method]++
	}
	return err
}

func (s *callStats) callsOf(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

func (s *callStats) unavailableCallsOf(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusedCalls[method]
}

type methodKey struct{}

func (s *callStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

func (s *callStats) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	method, _ := ctx.Value(methodKey{}).(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := rs.(type) {
	case *stats.Begin:
		s.begins[method]++
	case *stats.End:
		if status.Code(e.Error) == codes.Unavailable {
			s.unavailable[method]++
		}
	}
}

func (s *callStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (s *callStats) HandleConn(_ context.Context, cs stats.ConnStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cs.(type) {
	case *stats.ConnBegin:
		s.connBegins++
	case *stats.ConnEnd:
		s.connEnds++
	}
}

func (s *callStats) beginsOf(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.begins[method]
}

func (s *callStats) unavailableOf(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unavailable[method]
}

func (s *callStats) conns() (begun, ended int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connBegins, s.connEnds
}
