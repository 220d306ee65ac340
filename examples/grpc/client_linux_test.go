package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// dial returns a default grpc-go client of addr, with no proxy.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// get calls Get and returns the pid that answered.
func get(ctx context.Context, cc *grpc.ClientConn, msg string) (int, error) {
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, GetMethod, wrapperspb.String(msg), out); err != nil {
		return 0, err
	}
	pid, ok := loadtest.ParsePID([]byte(out.GetValue()))
	if !ok || !strings.HasSuffix(out.GetValue(), " "+msg) {
		return 0, fmt.Errorf("Get(%q) answered %q, want pid=<pid> ... %s", msg, out.GetValue(), msg)
	}
	return pid, nil
}

// openStream starts Stream(n).
func openStream(ctx context.Context, cc *grpc.ClientConn, n uint32) (grpc.ClientStream, error) {
	desc := &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true}
	s, err := cc.NewStream(ctx, desc, StreamMethod)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(wrapperspb.UInt32(n)); err != nil {
		return nil, err
	}
	return s, s.CloseSend()
}

// recvAll reads the answers of a Stream up to its end. got is how many
// came, all from pid; err is set unless n came in order from one pid and
// the stream then ended cleanly.
func recvAll(s grpc.ClientStream, n uint32) (pid int, got uint32, err error) {
	return recvAllNotify(s, n, nil)
}

// recvAllNotify is recvAll that closes first, if not nil, when the first
// answer has come.
func recvAllNotify(s grpc.ClientStream, n uint32, first chan<- struct{}) (pid int, got uint32, err error) {
	for {
		m := new(wrapperspb.StringValue)
		err := s.RecvMsg(m)
		if errors.Is(err, io.EOF) {
			if got != n {
				return pid, got, fmt.Errorf("Stream(%d) ended after %d answers", n, got)
			}
			return pid, got, nil
		}
		if err != nil {
			return pid, got, fmt.Errorf("Stream(%d), after %d answers: %w", n, got, err)
		}
		p, ok := loadtest.ParsePID([]byte(m.GetValue()))
		if !ok || (pid != 0 && p != pid) || !strings.HasSuffix(m.GetValue(), fmt.Sprintf(" seq=%d", got)) {
			return pid, got, fmt.Errorf("Stream(%d) answer %d: %q (first answers from pid %d)", n, got, m.GetValue(), pid)
		}
		pid = p
		got++
		if got == 1 && first != nil {
			close(first)
		}
	}
}

// kind is one kind of client of a load.
type kind string

const (
	unaryKeepAlive kind = "unary, one connection per client"
	unaryNewConn   kind = "unary, a new connection per RPC"
	streaming      kind = "server-streaming"
)

// rpcLoad runs grpc-go clients against a server until Stop: each client
// calls one RPC after the other and never retries. It counts the RPCs
// each pid answered, by kind of client, and every failure.
type rpcLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	byPid    map[kind]map[int]int
	ok       int
	failures int
	errs     []string
	changed  chan struct{}
}

// startLoad starts clients of each kind against addr: unary clients that
// keep one connection each, unary clients that open a new connection per
// RPC, and streaming clients (one connection each) that ask for streamLen
// answers per Stream.
func startLoad(t testing.TB, addr string, unary, newConn, streams int, streamLen uint32) *rpcLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &rpcLoad{cancel: cancel, byPid: map[kind]map[int]int{}, changed: make(chan struct{})}
	for _, k := range []kind{unaryKeepAlive, unaryNewConn, streaming} {
		l.byPid[k] = map[int]int{}
	}
	loop := func(k kind, cc *grpc.ClientConn, call func(ctx context.Context, cc *grpc.ClientConn, i int) (int, error)) {
		defer l.wg.Done()
		if cc != nil {
			defer cc.Close()
		}
		for i := 0; ctx.Err() == nil; i++ {
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			pid, err := call(rctx, cc, i)
			cancel()
			if ctx.Err() != nil {
				return // stopped: the last RPC counts neither way
			}
			l.record(k, pid, err)
		}
	}
	for c := range unary {
		l.wg.Add(1)
		go loop(unaryKeepAlive, dial(t, addr), func(ctx context.Context, cc *grpc.ClientConn, i int) (int, error) {
			return get(ctx, cc, fmt.Sprintf("client%d-%d", c, i))
		})
	}
	for c := range newConn {
		l.wg.Add(1)
		go loop(unaryNewConn, nil, func(ctx context.Context, _ *grpc.ClientConn, i int) (int, error) {
			cc := dial(t, addr)
			defer cc.Close()
			return get(ctx, cc, fmt.Sprintf("new%d-%d", c, i))
		})
	}
	for range streams {
		l.wg.Add(1)
		go loop(streaming, dial(t, addr), func(ctx context.Context, cc *grpc.ClientConn, _ int) (int, error) {
			s, err := openStream(ctx, cc, streamLen)
			if err != nil {
				return 0, err
			}
			pid, _, err := recvAll(s, streamLen)
			return pid, err
		})
	}
	return l
}

func (l *rpcLoad) record(k kind, pid int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failures++
		if len(l.errs) < 10 {
			l.errs = append(l.errs, fmt.Sprintf("%s: %v", k, err))
		}
	} else {
		l.ok++
		l.byPid[k][pid]++
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitServed waits until pid has answered n RPCs of every kind of client
// the load runs.
func (l *rpcLoad) waitServed(t testing.TB, pid, n int, kinds ...kind) {
	t.Helper()
	deadline := time.After(loadtest.DefaultTimeout)
	for {
		l.mu.Lock()
		done := true
		for _, k := range kinds {
			done = done && l.byPid[k][pid] >= n
		}
		ch := l.changed
		summary := fmt.Sprint(l.byPid)
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("pid %d did not answer %d RPCs of each of %q: answered %s", pid, n, kinds, summary)
		}
	}
}

// stop ends the clients and returns what they saw.
func (l *rpcLoad) stop() (ok, failures int, errs []string, byPid map[kind]map[int]int) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.failures, l.errs, l.byPid
}

// logLine is one JSON line of the program's log (-log json).
type logLine struct {
	Msg        string   `json:"msg"`
	Pid        *int     `json:"pid"`
	Generation *int     `json:"generation"`
	Duration   *float64 `json:"duration"`
	Forced     *bool    `json:"forced"`
	Error      *string  `json:"error"`
}

// waitLog waits for the log line msg of pid, from line from on, and
// returns it parsed.
func waitLog(t testing.TB, log *exampletest.Log, from int, msg string, pid int) (logLine, int) {
	t.Helper()
	line, next := log.Wait(t, from, fmt.Sprintf(`"msg":%q`, msg), fmt.Sprintf(`"pid":%d`, pid))
	var l logLine
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	return l, next
}
