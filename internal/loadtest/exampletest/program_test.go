package exampletest_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

func TestRun(t *testing.T) {
	for _, want := range []int{0, 3} {
		out, code := program.Run(t, "exit", strconv.Itoa(want))
		if code != want || !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
			t.Errorf("exit %d: status %d, output %q, want stdout and stderr", want, code, out)
		}
	}
	if out, code := program.Run(t, "nonsense"); code != 2 {
		t.Errorf("a bad command line: status %d, output %q; want 2", code, out)
	}
}

func TestDeploy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deployed")
	p := program.Deploy(t, path)
	if p.Path != path || len(p.Env) != len(program.Env) {
		t.Fatalf("Deploy: %+v, want the program at %s with the same environment", p, path)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("%s: %v %v, want an executable", path, fi, err)
	}
	if _, code := p.Run(t, "exit", "3"); code != 3 {
		t.Errorf("the deployed copy exits with %d, want 3", code)
	}
	// A new deploy replaces the file by rename: the old inode is intact.
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	exampletest.CopyFile(t, src, path)
	if b, err := os.ReadFile(path); err != nil || string(b) != "new" {
		t.Errorf("after CopyFile: %q %v", b, err)
	}
	if st, err := old.Stat(); err != nil || st.Size() != fi.Size() {
		t.Errorf("the file replaced: %v %v, want it untouched (size %d)", st, err, fi.Size())
	}
}
