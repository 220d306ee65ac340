package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// soakResult is one run of the repository's soak (internal/soak): many
// upgrades in a row under load, with each generation's resources.
type soakResult struct {
	program  string
	command  string // as a reader runs it, from the repository root
	upgrades int
	took     time.Duration // the soak's own "N upgrades in X s"
	requests map[string][2]int64
	acked    int64 // counter only: increments acknowledged
	ranges   map[string][4]int64
	passed   bool   // the soak exited 0: every one of its checks held
	failure  string // its last lines otherwise
}

var (
	soakLoad     = regexp.MustCompile(`(?m)^(new-connection|keep-alive): (\d+) requests, (\d+) failures`)
	soakIncs     = regexp.MustCompile(`(?m)^increments: (\d+) acknowledged`)
	soakRange    = regexp.MustCompile(`(?m)^(fds|threads|goroutines|rss_kB)\s+first\s+(-?\d+)\s+last\s+(-?\d+)\s+min\s+(-?\d+)\s+max\s+(-?\d+)`)
	soakUpgrades = regexp.MustCompile(`(?m)^(\d+) upgrades in ([\d.]+)s`)
)

// parseSoak reads the soak's output.
func parseSoak(out string) soakResult {
	r := soakResult{requests: map[string][2]int64{}, ranges: map[string][4]int64{}}
	for _, m := range soakLoad.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		f, _ := strconv.ParseInt(m[3], 10, 64)
		r.requests[m[1]] = [2]int64{n, f}
	}
	if m := soakIncs.FindStringSubmatch(out); m != nil {
		r.acked, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range soakRange.FindAllStringSubmatch(out, -1) {
		var v [4]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(m[i+2], 10, 64)
		}
		r.ranges[m[1]] = v
	}
	if m := soakUpgrades.FindStringSubmatch(out); m != nil {
		r.upgrades, _ = strconv.Atoi(m[1])
		s, _ := strconv.ParseFloat(m[2], 64)
		r.took = time.Duration(s * float64(time.Second))
	}
	return r
}

// runSoak runs `go run ./internal/soak` in the repository root for each
// program, with n upgrades.
func runSoak(ctx context.Context, root string, n int) []soakResult {
	var out []soakResult
	for _, prog := range []string{"counter", "http"} {
		args := []string{"run", "./internal/soak", "-program", prog, "-upgrades", strconv.Itoa(n)}
		cmd := exec.CommandContext(ctx, loadtest.GoCommand(), args...)
		cmd.Dir = root
		b, err := cmd.CombinedOutput()
		r := parseSoak(string(b))
		r.program = prog
		r.command = "go " + strings.Join(args, " ")
		r.passed = err == nil
		if err != nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			r.failure = fmt.Sprintf("%v: %s", err, strings.Join(lines[max(0, len(lines)-3):], " / "))
		}
		fmt.Printf("  %s: %d upgrades in %v, passed %v\n", prog, r.upgrades, r.took.Round(100*time.Millisecond), r.passed)
		out = append(out, r)
	}
	return out
}

func (rep *report) soak(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n## Soak: many upgrades in a row\n\n")
	p("The repository's soak (internal/soak), run by this benchmark from the\n")
	p("repository root: examples/counter, then examples/http, upgraded again and\n")
	p("again under 2 clients with a new connection per request and 2 keep-alive\n")
	p("clients (and, for the counter, 4 clients incrementing it). It fails on a\n")
	p("failed request, a final count other than the increments acknowledged, an\n")
	p("old generation exiting other than 0, a process left over, or a measure\n")
	p("of the serving generation growing from the first generations to the last.\n\n")
	p("| command | upgrades | time | requests (failed) | increments acknowledged | fds | threads | goroutines | resident memory | checks |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	rng := func(r soakResult, k string, kib bool) string {
		v, ok := r.ranges[k]
		if !ok {
			return "-"
		}
		if kib {
			return fmt.Sprintf("%.1f–%.1f MiB", float64(v[2])/1024, float64(v[3])/1024)
		}
		return fmt.Sprintf("%d–%d", v[2], v[3])
	}
	for _, r := range rep.soaks {
		var n, f int64
		for _, v := range r.requests {
			n, f = n+v[0], f+v[1]
		}
		acked := "-"
		if r.program == "counter" {
			acked = fmt.Sprint(r.acked)
		}
		checks := "passed"
		if !r.passed {
			checks = "**failed**: " + rep.scrub(r.failure)
		}
		p("| `%s` | %d | %v | %d (%d) | %s | %s | %s | %s | %s | %s |\n", r.command, r.upgrades, r.took.Round(100*time.Millisecond),
			n, f, acked, rng(r, "fds", false), rng(r, "threads", false), rng(r, "goroutines", false), rng(r, "rss_kB", true), checks)
	}
	p("\nThe ranges are the least and the most over the generations, each measured\n")
	p("once while it served.\n")
}
