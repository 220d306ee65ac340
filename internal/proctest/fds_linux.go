package proctest

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// OpenFds counts the open file descriptors of this process, not counting
// the one it reads them with, or returns -1 if it cannot.
func OpenFds() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1
}

// ExpectError calls open, which must fail and leave no descriptor open
// that was not open before. Its error must wrap is (unless is is nil),
// contain want, and start with one of prefixes (if there are any).
func ExpectError(t testing.TB, open func() error, is error, want string, prefixes ...string) {
	t.Helper()
	before := OpenFds()
	err := open()
	after := OpenFds()
	if err == nil {
		t.Fatal("no error")
	}
	t.Log(err)
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %v does not wrap %v", err, is)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
	hasPrefix := func(p string) bool { return strings.HasPrefix(err.Error(), p) }
	if len(prefixes) > 0 && !slices.ContainsFunc(prefixes, hasPrefix) {
		t.Errorf("error %q does not start with %q", err, prefixes)
	}
	if after != before {
		t.Errorf("%d descriptors open before, %d after", before, after)
	}
}
