package drain_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tableflip-go/tableflip/internal/testcert"
	"github.com/tableflip-go/tableflip/tableflip/drain"
)

// partialGrace is the idle grace of the partial-request tests: the
// clients finish their requests well after it.
const partialGrace = 50 * time.Millisecond

// startPartial serves on a new listener, plain or through ServeTLS, and
// returns the server, its logs, and a dial function for clients.
func startPartial(t *testing.T, useTLS bool) (*drain.Server, *observer.ObservedLogs, func() (net.Conn, *bufio.Reader)) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "g1") }),
		ReadHeaderTimeout: timeout,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	d := drain.New(srv, drain.Options{IdleGrace: partialGrace, Logger: zap.New(core)})
	ln := listen(t)
	served := make(chan error, 1)
	var clientCfg *tls.Config
	if useTLS {
		cert, pool, err := testcert.SelfSigned("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		clientCfg = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		go func() { served <- d.ServeTLS(ln, &tls.Config{Certificates: []tls.Certificate{cert}}) }()
	} else {
		go func() { served <- d.Serve(ln) }()
	}
	t.Cleanup(func() {
		srv.Close()
		recv(t, served, "Serve to return")
	})
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", ln.Addr().String(), timeout)
		if err != nil {
			t.Fatal(err)
		}
		if clientCfg != nil {
			c = tls.Client(c, clientCfg)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(timeout))
		return c, bufio.NewReader(c)
	}
	return d, logs, dial
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func readAnswer(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "g1" {
		t.Fatalf("answer %q, %v; want g1", body, err)
	}
	return resp
}

// TestPartialRequestGetsTheDrainDeadline: a connection, new or idle
// between requests, whose client has sent part of a request when the
// drain begins is waited for past the idle grace, and answered with
// "Connection: close"; the log counts it. Plain, and under TLS through
// ServeTLS.
func TestPartialRequestGetsTheDrainDeadline(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "ServeTLS"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d, logs, dial := startPartial(t, useTLS)
			idle, idleBr := dial()
			write(t, idle, "GET / HTTP/1.1\r\nHost: drain.test\r\n\r\n")
			readAnswer(t, idleBr)
			fresh, freshBr := dial()
			silent, _ := dial()
			for _, c := range []net.Conn{idle, fresh} {
				write(t, c, "GET / HTTP/1.1\r\nHost: drain.test\r\n")
			}
			// The server has read the partial headers once it has
			// answered a later request on a connection of its own.
			probe, probeBr := dial()
			write(t, probe, "GET / HTTP/1.1\r\nHost: drain.test\r\nConnection: close\r\n\r\n")
			readAnswer(t, probeBr)

			drained := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				drained <- d.Drain(ctx)
			}()
			waitFor(t, d.Draining(), "the drain to begin")
			// Waits for time itself: the feature is what happens
			// after the grace.
			time.Sleep(4 * partialGrace)
			select {
			case err := <-drained:
				t.Fatalf("Drain returned %v while two requests were half sent", err)
			default:
			}
			for _, c := range []struct {
				c  net.Conn
				br *bufio.Reader
			}{{idle, idleBr}, {fresh, freshBr}} {
				write(t, c.c, "\r\n")
				if resp := readAnswer(t, c.br); !resp.Close {
					t.Error("the answer during the drain lacks Connection: close")
				}
			}
			if err := recv(t, drained, "Drain to return"); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			done := logs.FilterMessage("drain: done").All()
			if len(done) != 1 {
				t.Fatalf("drain: done logged %d times", len(done))
			}
			f := done[0].ContextMap()
			// The silent connection sent nothing (not even a TLS
			// ClientHello): it is closed at the end of its grace.
			if f["waited_for_partial_requests"] != int64(2) || f["closed_new_silent_past_grace"] != int64(1) {
				t.Errorf("drain: done with %v, want 2 partial requests waited for and 1 silent connection closed", f)
			}
			silent.SetReadDeadline(time.Now().Add(timeout))
			if _, err := silent.Read(make([]byte, 1)); err == nil {
				t.Error("the silent connection is still open")
			}
		})
	}
}

// TestPartialRequestCutAtTheDeadline: a request that is still half sent
// when the drain's context ends is cut, and the log says so.
func TestPartialRequestCutAtTheDeadline(t *testing.T) {
	t.Parallel()
	d, logs, dial := startPartial(t, false)
	c, br := dial()
	write(t, c, "GET / HTTP/1.1\r\nHost: drain.test\r\n\r\n")
	readAnswer(t, br)
	write(t, c, "GET / HTTP/1.1\r\n")
	probe, probeBr := dial()
	write(t, probe, "GET / HTTP/1.1\r\nHost: drain.test\r\nConnection: close\r\n\r\n")
	readAnswer(t, probeBr)

	ctx, cancel := context.WithTimeout(context.Background(), 4*partialGrace)
	defer cancel()
	err := d.Drain(ctx)
	if ie := (*drain.IncompleteError)(nil); !errors.As(err, &ie) || ie.Open != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want an *IncompleteError with 1 open connection", err)
	}
	cut := logs.FilterMessage("drain: cut short at the deadline, closed the remaining connections").All()
	if len(cut) != 1 || cut[0].ContextMap()["receiving_request"] != int64(1) {
		t.Errorf("cut short entries %v, want one with receiving_request=1", cut)
	}
}
