package e2e

import (
	"context"
	"sync"

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
	connBegins, connEnds int
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
