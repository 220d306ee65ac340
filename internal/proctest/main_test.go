package proctest

import (
	"slices"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines. Unlike Main, it does not make this
// process a subreaper: TestCleanupSparesOtherProcesses needs a process
// outside this one's tree, an orphan that another process adopts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLinePids(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []int
	}{
		{"READY pid=42 generation=1", []int{42}},
		{"UPGRADE pid=7 child=8 err=\"<nil>\"", []int{7}},
		{"FATAL pid=9: broken", []int{9}},
		{"a pid=1 b pid=2", []int{1, 2}},
		// kill(2) reads 0 as this process group and -1 as every process.
		{"CHILD pid=0 pid=-1 pid= pid=x", nil},
		{"ppid=5 child_pid=6 pid", nil},
	} {
		if got := linePids(tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("linePids(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}
