package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// fdResult is the upgrade latency of one implementation with n inherited
// listeners, claimed by the new generation.
type fdResult struct {
	n         int
	latencies map[string][]time.Duration // by implementation
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// runFds upgrades a server holding n listeners, for each n, alternating
// between the two implementations so that both see the same noise.
func (b *binaries) runFds(ctx context.Context, o options) ([]fdResult, error) {
	var out []fdResult
	for _, n := range o.fdSizes {
		r := fdResult{n: n, latencies: map[string][]time.Duration{}}
		srvs := map[string]*loadtest.Server{}
		for _, impl := range []string{ours, anchor} {
			name := map[string]string{ours: "ours", anchor: "anchor"}[impl]
			dir, err := os.MkdirTemp(b.dir, "fds-"+name+"-")
			if err != nil {
				return nil, err
			}
			log, err := os.Create(filepath.Join(dir, "log"))
			if err != nil {
				return nil, err
			}
			defer log.Close()
			pid := filepath.Join(dir, "pid")
			cmd := exec.Command(b.fds, "-impl", name, "-fds", strconv.Itoa(n), "-pidfile", pid)
			cmd.Stdout, cmd.Stderr = log, log
			srv, err := loadtest.StartServer(ctx, cmd, pid)
			if err != nil {
				return nil, fmt.Errorf("fds=%d %s: %w", n, impl, err)
			}
			defer srv.Close()
			srvs[impl] = srv
		}
		for range o.fdReps {
			for _, impl := range []string{ours, anchor} {
				up, err := srvs[impl].Upgrade(ctx)
				if err != nil {
					return nil, fmt.Errorf("fds=%d %s: %w", n, impl, err)
				}
				r.latencies[impl] = append(r.latencies[impl], up.Latency)
			}
		}
		for _, impl := range []string{ours, anchor} {
			if _, err := srvs[impl].Stop(ctx); err != nil {
				return nil, err
			}
		}
		fmt.Printf("  fds=%-6d ours %-10v anchor %-10v ratio %.2f\n", n, ms(median(r.latencies[ours])),
			ms(median(r.latencies[anchor])), ratio(median(r.latencies[ours]), median(r.latencies[anchor])))
		out = append(out, r)
	}
	return out, nil
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func ms(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < 10*time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d < time.Second:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}
