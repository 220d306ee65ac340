package exampletest_test

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

func TestLog(t *testing.T) {
	l := exampletest.NewLog(t, "test: ")
	if l.Len() != 0 {
		t.Fatalf("Len %d of a new Log", l.Len())
	}
	for _, p := range []string{"a ready", " pid=1\nb re", "ady pid=2\n", "c ready pid=1\npartial"} {
		if n, err := l.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q): %d %v", p, n, err)
		}
	}
	if l.Len() != 3 {
		t.Errorf("Len %d, want 3 whole lines", l.Len())
	}
	line, next := l.Wait(t, 0, "ready", "pid=1")
	if line != "a ready pid=1" || next != 1 {
		t.Errorf("Wait from 0: %q %d", line, next)
	}
	if line, next = l.Wait(t, next, "pid=1"); line != "c ready pid=1" || next != 3 {
		t.Errorf("Wait from 1: %q %d", line, next)
	}
	if got, want := l.String(), "a ready pid=1\nb ready pid=2\nc ready pid=1\npartial"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}

	// A line written later ends the wait.
	done := make(chan string)
	go func() {
		line, _ := l.Wait(t, 3, "partial")
		done <- line
	}()
	l.Write([]byte(" line\n"))
	if line := <-done; line != "partial line" {
		t.Errorf("Wait for a later line: %q", line)
	}
}
