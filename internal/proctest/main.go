package proctest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// RoleEnv names the role a re-executed test binary plays.
const RoleEnv = "TFTEST_ROLE"

// Main is the TestMain of a package whose tests re-execute the test binary.
// Started with RoleEnv set, the binary runs that role from roles and exits
// with its code (2, after a FATAL line, for a role roles does not have).
// Otherwise it makes this process the reaper of the generations its tests
// orphan (see SetSubreaper; Linux only) and runs the tests, failing if a
// goroutine leaks.
func Main(m *testing.M, roles map[string]func() int) {
	if role := os.Getenv(RoleEnv); role != "" {
		run, ok := roles[role]
		if !ok {
			fmt.Printf("FATAL unknown role %q\n", role)
			os.Exit(2)
		}
		os.Exit(run())
	}
	if err := becomeReaper(); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(m)
}

// Fields parses the name=value words of an event line. A value printed
// with %q comes without its quotes (if it has no space).
func Fields(line string) map[string]string {
	m := make(map[string]string)
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

// linePids returns the pids an event line names: the digits N that start
// a word pid=N, if N is above 0 (to kill(2), 0 and -1 mean "my process
// group" and "every process I may signal").
func linePids(line string) []int {
	var pids []int
	for _, f := range strings.Fields(line) {
		v, ok := strings.CutPrefix(f, "pid=")
		n := 0
		for n < len(v) && v[n] >= '0' && v[n] <= '9' {
			n++
		}
		if pid, err := strconv.Atoi(v[:n]); ok && err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ShortDir is a temporary directory with a short path, removed when the
// test ends: a unix socket path must fit in 108 bytes, and t.TempDir's
// include the test's name.
func ShortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tfu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
