package exampletest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// Log keeps the lines a process tree writes to it, and lets a test wait
// for one. With a prefix, each line also goes to the test's log.
type Log struct {
	t      testing.TB
	prefix string

	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced at each write
	ended   bool          // the test has ended: no more t.Log
}

// NewLog returns a Log for the output of t's processes. A non-empty
// prefix puts each line in t's log, after prefix.
func NewLog(t testing.TB, prefix string) *Log {
	l := &Log{t: t, prefix: prefix, changed: make(chan struct{})}
	// Registered before the processes' cleanup, so run after it.
	t.Cleanup(func() {
		l.mu.Lock()
		l.ended = true
		l.mu.Unlock()
	})
	return l
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.lines = append(l.lines, line)
		l.partial = l.partial[i+1:]
		if l.prefix != "" && !l.ended {
			l.t.Logf("%s%s", l.prefix, line)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// Len is the number of whole lines so far: pass it to Wait to wait for a
// line written from now on.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// Wait returns the first line, from index from on, that contains every
// one of subs, and the index after it. It fails the test when there is
// none within loadtest's DefaultTimeout.
func (l *Log) Wait(t testing.TB, from int, subs ...string) (line string, next int) {
	t.Helper()
	deadline := time.After(loadtest.DefaultTimeout)
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			if line := l.lines[i]; containsAll(line, subs) {
				l.mu.Unlock()
				return line, i + 1
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no line with %q; output:\n%s", subs, l)
		}
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// String is everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + "\n" + string(l.partial)
}
