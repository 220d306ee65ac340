package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// GoCommand returns the go command to build with: $GOROOT/bin/go when
// GOROOT is set, else "go" from PATH, where `go test` and `go run` put
// their own toolchain's bin directory first.
func GoCommand() string {
	exe := "go"
	if runtime.GOOS == "windows" {
		exe = "go.exe"
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", exe)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(exe); err == nil {
		return p
	}
	return "go"
}

// ErrBuild is wrapped by Build's error when go build fails.
var ErrBuild = errors.New("loadtest: go build failed")

// Build runs `go build -o DIR/NAME FLAGS... PKG` in the current directory
// and returns the binary's path. pkg is an import path or a relative
// directory ("."); NAME is the last element of pkg. go's output is in the
// error when the build fails.
func Build(ctx context.Context, dir, pkg string, flags ...string) (string, error) {
	name := filepath.Base(pkg)
	if name == "." || name == string(filepath.Separator) {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("loadtest: build %s: %w", pkg, err)
		}
		name = filepath.Base(wd)
	}
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	out := filepath.Join(dir, name)
	args := append([]string{"build", "-o", out}, flags...)
	args = append(args, pkg)
	cmd := exec.CommandContext(ctx, GoCommand(), args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: go build %s: %w\n%s", ErrBuild, pkg, err, b)
	}
	return out, nil
}
