package e2e

// A loopback TCP proxy that forwards HTTP/2 frame by frame and counts what the
// keepalive test is about: the client's keepalive PINGs, the server's PING
// ACKs and any GOAWAY (with its error code and debug data, e.g.
// ENHANCE_YOUR_CALM "too_many_pings").

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

const (
	framePing   = 0x6
	frameGoAway = 0x7
	flagAck     = 0x1
	preface     = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// keepalivePayload: grpc-go's keepalive pings carry 8 zero bytes (its BDP
// pings carry another payload), so the two are told apart.
var keepalivePayload = [8]byte{}

type frameCounts struct {
	mu             sync.Mutex
	keepalivePings int      // client -> server, not ACK, zero payload
	pingAcks       int      // server -> client ACKs of those
	goAways        []string // server -> client
}

func (c *frameCounts) snapshot() (pings, acks int, goAways []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keepalivePings, c.pingAcks, append([]string(nil), c.goAways...)
}

type proxy struct {
	l      net.Listener
	counts *frameCounts
}

// startProxy listens on a free loopback port and forwards every connection to
// backend.
func startProxy(backend string) (*proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{l: l, counts: &frameCounts{}}
	go p.serve(backend)
	return p, nil
}

func (p *proxy) addr() string { return p.l.Addr().String() }
func (p *proxy) close()       { _ = p.l.Close() }

func (p *proxy) serve(backend string) {
	for {
		client, err := p.l.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", backend)
		if err != nil {
			_ = client.Close()
			continue
		}
		go p.pipe(client, server, true)
		go p.pipe(server, client, false)
	}
}

// pipe copies src to dst frame by frame; fromClient: src is the gRPC client.
func (p *proxy) pipe(src, dst net.Conn, fromClient bool) {
	defer src.Close()
	defer dst.Close()
	r := bufio.NewReader(src)
	if fromClient {
		buf := make([]byte, len(preface))
		if _, err := io.ReadFull(r, buf); err != nil || string(buf) != preface {
			return
		}
		if _, err := dst.Write(buf); err != nil {
			return
		}
	}
	header := make([]byte, 9)
	for {
		if _, err := io.ReadFull(r, header); err != nil {
			return
		}
		length := uint32(header[0])<<16 | uint32(header[1])<<8 | uint32(header[2])
		payload := make([]byte, length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		p.count(header[3], header[4], payload, fromClient)
		if _, err := dst.Write(append(header, payload...)); err != nil {
			return
		}
	}
}

func (p *proxy) count(typ, flags byte, payload []byte, fromClient bool) {
	c := p.counts
	c.mu.Lock()
	defer c.mu.Unlock()
	keepalive := len(payload) == 8 && [8]byte(payload) == keepalivePayload
	switch {
	case typ == framePing && fromClient && flags&flagAck == 0 && keepalive:
		c.keepalivePings++
	case typ == framePing && !fromClient && flags&flagAck != 0 && keepalive:
		c.pingAcks++
	case typ == frameGoAway && !fromClient && len(payload) >= 8:
		code := binary.BigEndian.Uint32(payload[4:8])
		c.goAways = append(c.goAways, fmt.Sprintf("GOAWAY code %d debug %q", code, payload[8:]))
	}
}

// The proxy's own check: a keepalive PING, its ACK and a GOAWAY
// ENHANCE_YOUR_CALM "too_many_pings" (what a grpc-go server with its default
// enforcement policy sends) are each counted, so the keepalive test would see them.
func TestProxyCountsKeepalivePingsAcksAndGoAways(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	served := make(chan error, 1)
	go func() {
		conn, err := backend.Accept()
		if err != nil {
			served <- err
			return
		}
		defer conn.Close()
		buf := make([]byte, len(preface)+9+8)
		if _, err := io.ReadFull(conn, buf); err != nil {
			served <- err
			return
		}
		goAway := append(binary.BigEndian.AppendUint32(make([]byte, 4), 11), "too_many_pings"...)
		_, err = conn.Write(append(frame(framePing, flagAck, keepalivePayload[:]), frame(frameGoAway, 0, goAway)...))
		served <- err
	}()
	p, err := startProxy(backend.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	client, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write(append([]byte(preface), frame(framePing, 0, keepalivePayload[:])...)); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the GOAWAY counted", func() bool {
		_, _, goAways := p.counts.snapshot()
		return len(goAways) == 1
	})
	pings, acks, goAways := p.counts.snapshot()
	if pings != 1 || acks != 1 || goAways[0] != `GOAWAY code 11 debug "too_many_pings"` {
		t.Fatalf("want 1 ping, 1 ack, GOAWAY 11 too_many_pings; got %d, %d, %v", pings, acks, goAways)
	}
}

// frame: an HTTP/2 frame on stream 0.
func frame(typ, flags byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, 0, 0, 0, 0}, payload...)
}
