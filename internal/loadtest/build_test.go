package loadtest_test

import (
	"context"
	"errors"
	"os/exec"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

func TestBuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	bin, err := loadtest.Build(ctx, t.TempDir(), "./testdata/hello")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, bin).Output()
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("%s: %q, %v", bin, out, err)
	}
	if _, err := loadtest.Build(ctx, t.TempDir(), "./testdata/nonexistent"); !errors.Is(err, loadtest.ErrBuild) {
		t.Errorf("building a missing package: %v", err)
	}
}
