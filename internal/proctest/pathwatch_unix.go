//go:build unix

package proctest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// PathWatch stats a path in a tight loop, counting the times it found the
// path missing or another file there: a unix socket's path must stay bound
// to the same file across upgrades.
type PathWatch struct {
	path                      string
	ino                       uint64
	checks, missing, replaced atomic.Int64
	stop, done                chan struct{}
	once                      sync.Once
}

// WatchPath starts watching path, which is now the file with inode ino.
// The watch stops when the test ends, if Check has not stopped it before.
func WatchPath(t testing.TB, path string, ino uint64) *PathWatch {
	w := &PathWatch{path: path, ino: ino, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			var st syscall.Stat_t
			w.checks.Add(1)
			if err := syscall.Lstat(path, &st); err != nil {
				w.missing.Add(1)
			} else if st.Ino != ino {
				w.replaced.Add(1)
			}
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *PathWatch) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// String reports the counts.
func (w *PathWatch) String() string {
	return fmt.Sprintf("%d stats of %s, %d found it missing, %d found another file",
		w.checks.Load(), w.path, w.missing.Load(), w.replaced.Load())
}

// Check stops the watch and fails the test if the path was ever missing or
// another file, or if the watch ran fewer than 1000 times.
func (w *PathWatch) Check(t testing.TB) {
	t.Helper()
	w.halt()
	if w.missing.Load() != 0 || w.replaced.Load() != 0 {
		t.Errorf("the socket path was missing in %d and another file in %d of %d stats", w.missing.Load(), w.replaced.Load(), w.checks.Load())
	}
	if w.checks.Load() < 1000 {
		t.Errorf("the checker ran only %d times", w.checks.Load())
	}
}
