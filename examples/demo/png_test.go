package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDemoPNG runs the demo with -png and checks that the picture is
// written, is a PNG of the plot's size, and is named in the summary.
func TestDemoPNG(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the demo needs Linux")
	}
	path := filepath.Join(t.TempDir(), "run.png")
	var out bytes.Buffer
	code := run([]string{"-upgrades", "2", "-interval", "0", "-wrk=false", "-png", path}, &out)
	t.Logf("demo output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("demo exited with status %d", code)
	}
	if !strings.Contains(out.String(), "Picture of the run: "+path) {
		t.Errorf("the summary does not name the picture")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// 24 cm x 10 cm at gonum's default 96 dpi.
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 300 {
		t.Errorf("picture is %v, want the plot's size", b)
	}
}
