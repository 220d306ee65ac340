package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The code in docs/writing-a-transport.md is the code of this example, so
// that following the page literally builds the package that the tests
// prove: the blocks marked "file" are, in order, the whole file; the ones
// marked "excerpt" appear in it as they are.
func TestWritingATransportDoc(t *testing.T) {
	root := filepath.Join("..", "..")
	f, err := os.Open(filepath.Join(root, "docs", "writing-a-transport.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	marker := regexp.MustCompile(`^<!-- (file|excerpt): (\S+) -->$`)
	files := map[string][]string{}
	var excerpts [][2]string
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		m := marker.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if !sc.Scan() || sc.Text() != "```go" {
			t.Fatalf("line %d: a %s marker not followed by a go block", line, m[1])
		}
		line++
		var b strings.Builder
		for sc.Scan() {
			line++
			if sc.Text() == "```" {
				break
			}
			b.WriteString(sc.Text() + "\n")
		}
		if m[1] == "file" {
			files[m[2]] = append(files[m[2]], b.String())
		} else {
			excerpts = append(excerpts, [2]string{m[2], b.String()})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"transport.go", "memfd_linux.go", "memfd_other.go"} {
		path := "examples/memfd/memtable/" + want
		src, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(files[path], "\n"); got != string(src) {
			t.Errorf("the blocks of %s in the doc (%d) are not the file: make them the file, piece by piece", path, len(files[path]))
		}
		delete(files, path)
	}
	for path := range files {
		t.Errorf("the doc has file blocks of %s, which is not checked", path)
	}
	if len(excerpts) < 3 {
		t.Errorf("%d excerpts, want the service's and the tests'", len(excerpts))
	}
	for _, e := range excerpts {
		src, err := os.ReadFile(filepath.Join(root, e[0]))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), e[1]) {
			t.Errorf("an excerpt of %s is not in it:\n%s", e[0], e[1])
		}
	}
}
