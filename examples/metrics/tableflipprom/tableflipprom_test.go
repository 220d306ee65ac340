package tableflipprom

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/tableflip"
)

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ReasonNone},
		{&tableflip.ChildError{Pid: 1, Reason: "tcp: listen tcp 127.0.0.1:99999: invalid port", ExitStatus: 1}, ReasonChildFailed},
		{&tableflip.ChildError{Pid: 1, ExitStatus: 1}, ReasonChildExited},
		{&tableflip.ChildError{Pid: 1, ExitStatus: -1}, ReasonChildKilled},
		{&tableflip.ChildError{Pid: 1, ExitStatus: -1, TimedOut: true}, ReasonTimeout},
		{&tableflip.ChildError{Pid: 1, ExitStatus: -1, Err: context.Canceled}, ReasonCanceled},
		{&tableflip.ChildError{Pid: 1, ExitStatus: -1, Err: fmt.Errorf("read: %w", tableflip.ErrProtocol)}, ReasonProtocol},
		{fmt.Errorf("%w during the upgrade: %w", tableflip.ErrStopped, &tableflip.ChildError{Pid: 1, ExitStatus: -1}), ReasonStopped},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), ReasonTimeout},
		{errors.New("tableflip: start next generation /bin/x: no such file"), ReasonOther},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if !labelValue.MatchString(Reason(tc.err)) {
			t.Errorf("Reason(%v) = %q: not a label value", tc.err, Reason(tc.err))
		}
	}
}

func TestHistogram(t *testing.T) {
	h := newHistogram(UpgradeBuckets)
	for _, v := range []float64{0, .005, .006, 1, 1000} {
		h.observe(v)
	}
	// 0 and .005 in the first bucket (le .005), .006 in le .01, 1 in le 1, 1000 above all.
	want := make([]uint64, len(UpgradeBuckets)+1)
	want[0], want[1], want[7], want[len(UpgradeBuckets)] = 2, 1, 1, 1
	if fmt.Sprint(h.Counts) != fmt.Sprint(want) || h.Sum != 1001.011 {
		t.Errorf("counts %v sum %v, want %v and 1001.011", h.Counts, h.Sum, want)
	}
	o := newHistogram(UpgradeBuckets)
	o.observe(.006)
	h.add(o)
	if h.Counts[1] != 2 {
		t.Errorf("after add: %v", h.Counts)
	}
}

// TestLinkRefusesBadInput: what a generation reads from its parent is
// checked; malformed, oversized or inconsistent messages are refused
// with an error, never misread.
func TestLinkRefusesBadInput(t *testing.T) {
	good := func() snapshot {
		s := newSnapshot()
		s.countUpgrade(ResultSucceeded, ReasonNone, time.Second)
		return s
	}
	encode := func(f func(s *snapshot)) string {
		s := good()
		f(&s)
		l, peer := pair(t)
		defer l.close()
		defer peer.close()
		if err := l.send(message{Counts: s}); err != nil {
			t.Fatal(err)
		}
		line, err := peer.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	for _, tc := range []struct {
		name, line, err string
	}{
		{"not JSON", "{\n", "bad message"},
		{"bad result", encode(func(s *snapshot) { s.Upgrades["maybe none"] = 1 }), `bad upgrade count "maybe none"`},
		{"bad reason", encode(func(s *snapshot) { s.Upgrades["failed Bad Reason"] = 1 }), "bad upgrade count"},
		{"other buckets", encode(func(s *snapshot) { s.Drain = newHistogram([]float64{1, 2}) }), "drain duration: buckets"},
		{"short counts", encode(func(s *snapshot) { s.histogram(ResultFailed).Counts = []uint64{1} }), "upgrade duration: 1 counts"},
		{"NaN sum", strings.Replace(encode(func(s *snapshot) { s.Drain.Sum = 12345 }), "12345", "-1", 1), "drain duration: sum -1"},
		{"too long", strings.Repeat(" ", maxMessage+10) + "\n", "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, peer := pair(t)
			defer l.close()
			defer peer.close()
			go l.conn.Write([]byte(tc.line))
			_, err := peer.receive()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("receive(%.60q): %v, want an error with %q", tc.line, err, tc.err)
			}
		})
	}
	// The good one, for comparison.
	l, peer := pair(t)
	defer l.close()
	defer peer.close()
	go l.send(message{Started: 42, Counts: good()})
	msg, err := peer.receive()
	if err != nil || msg.Started != 42 || msg.Counts.Upgrades["succeeded none"] != 1 || msg.Counts.histogram(ResultSucceeded).Sum != 1 {
		t.Errorf("receive: %+v, %v", msg, err)
	}
}

// pair returns both ends of a new link.
func pair(t *testing.T) (*link, *link) {
	t.Helper()
	l, childEnd, err := newLink()
	if err != nil {
		t.Fatal(err)
	}
	peer, err := fileLink(childEnd)
	if err != nil {
		t.Fatal(err)
	}
	return l, peer
}

func TestMonotonic(t *testing.T) {
	m := monotonicNow()
	if m <= 0 {
		t.Fatalf("CLOCK_MONOTONIC: %d", m)
	}
	if d := time.Since((m - mono(time.Second)).time()); d < time.Second || d > time.Minute {
		t.Errorf("a second ago on CLOCK_MONOTONIC is %v ago", d)
	}
	if !mono(0).time().IsZero() || !(monotonicNow() + mono(time.Hour)).time().IsZero() {
		t.Error("zero or future readings are not zero times")
	}
}
