package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBucketize(t *testing.T) {
	ms := time.Millisecond
	samples := []sample{
		{at: 10 * ms, lat: 2 * ms},
		{at: 20 * ms, lat: 4 * ms},
		{at: 150 * ms, failed: true},
		{at: 160 * ms, failed: true},
		{at: 250 * ms, lat: 8 * ms},
	}
	s := bucketize(samples, 300*ms)
	if len(s.t) != 4 {
		t.Fatalf("%d buckets, want 4", len(s.t))
	}
	if s.errs[0] != 0 || s.errs[1] != 2 || s.errs[2] != 0 {
		t.Errorf("errors per bucket %v, want [0 2 0 0]", s.errs)
	}
	if s.p50[0] != 2 || s.p99[0] != 2 || s.p99[2] != 8 || s.p99[1] != 0 {
		t.Errorf("p50 %v p99 %v", s.p50, s.p99)
	}
}

func TestWindowP99(t *testing.T) {
	ms := time.Millisecond
	r := result{upgrades: []upgradeRecord{{at: 100 * ms, latency: 20 * ms, exited: 50 * ms}}}
	for i := range 100 {
		r.samples = append(r.samples, sample{at: time.Duration(i) * ms, lat: ms})
	}
	r.samples = append(r.samples, sample{at: 120 * ms, lat: 90 * ms}, sample{at: 130 * ms, lat: 80 * ms})
	w, s := r.windowP99()
	if w != 80*ms || s != ms {
		t.Errorf("window %v steady %v, want 80ms and 1ms", w, s)
	}
}

func TestResumed(t *testing.T) {
	r := result{samples: []sample{
		{client: 0, pid: 1, resumed: false},
		{client: 0, pid: 1, resumed: true},
		{client: 1, pid: 1, resumed: true},
		{client: 0, pid: 2, resumed: false}, // first to generation 2: not resumed
		{client: 1, pid: 2, resumed: true},  // first to generation 2: resumed
		{client: 1, pid: 2, resumed: true},
		{failed: true},
	}}
	all, first := r.resumed()
	if all != 4.0/6 || first != 0.5 {
		t.Errorf("resumed %v of all, %v of first requests, want 4/6 and 1/2", all, first)
	}
}

func TestErrKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "refused"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "reset"},
		{fmt.Errorf("get: %w", io.EOF), "EOF"},
		{errLost, "lost"},
		{fmt.Errorf("dial unix: %w", syscall.ENOENT), "no socket file"},
		{errors.New("status 503 Service Unavailable"), "non-200"},
		{&quic.ApplicationError{Remote: true, ErrorMessage: "shutting down"}, "connection closed by the server"},
		{fmt.Errorf("dial: %w", &quic.IdleTimeoutError{}), "timeout"},
		{&quic.StatelessResetError{}, "stateless reset"},
		{errors.New("something else"), "other"},
	} {
		if got := errKind(c.err); got != c.want {
			t.Errorf("errKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestReadMarks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	log := "T main 10 1000\nnoise from the server\nT sighup 9 2000\nT sighup 9 5000\nT bad x y\n"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := readMarks(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.after(9, "sighup", time.Unix(0, 3000)); !got.Equal(time.Unix(0, 5000)) {
		t.Errorf("after(9, sighup, 3000) = %v, want 5000ns", got.UnixNano())
	}
	if got := m.after(10, "main", time.Time{}); !got.Equal(time.Unix(0, 1000)) {
		t.Errorf("after(10, main) = %v", got.UnixNano())
	}
	if got := m.after(11, "main", time.Time{}); !got.IsZero() {
		t.Errorf("a pid that marked nothing: %v", got)
	}
}

func TestMedianQuantile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if median(ds) != 3 || quantile(ds, 0.99) != 4 || quantile(ds, 1) != 5 || median(nil) != 0 {
		t.Errorf("median %v, p99 %v", median(ds), quantile(ds, 0.99))
	}
	if ds[0] != 5 {
		t.Error("median sorted its argument")
	}
}
