package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

const bucket = 100 * time.Millisecond

// series is a load's samples cut into 100 ms buckets.
type series struct {
	t        []float64 // bucket start, seconds
	p50, p99 []float64 // ms, over the bucket's answered requests
	errs     []float64 // failures per bucket
}

func bucketize(samples []sample, d time.Duration) series {
	n := int(d/bucket) + 1
	lats := make([][]time.Duration, n)
	var s series
	s.errs = make([]float64, n)
	for _, x := range samples {
		i := int(x.at / bucket)
		if i < 0 || i >= n {
			continue
		}
		if x.failed {
			s.errs[i]++
		} else {
			lats[i] = append(lats[i], x.lat)
		}
	}
	for i := range n {
		s.t = append(s.t, (time.Duration(i) * bucket).Seconds())
		p50, p99 := quantile(lats[i], 0.5), quantile(lats[i], 0.99)
		s.p50 = append(s.p50, msf(p50))
		s.p99 = append(s.p99, msf(p99))
	}
	return s
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// quantile of ds (unsorted); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

func (r result) total() (ok, failed int64) {
	if r.wrk != nil {
		return r.wrk.Requests, wrkFailed(r.wrk)
	}
	for _, s := range r.samples {
		if s.failed {
			failed++
		} else {
			ok++
		}
	}
	return ok, failed
}

// wrkFailed is what wrk 4.1.0 counted as failed: its connect, read and
// write errors and its non-2xx answers. Its "timeout" errors are not
// failures: wrk 4.1.0 counts one for an answer that came after --timeout
// (src/wrk.c, response_complete: the latency does not fit its histogram),
// and counts that answer among its requests too; a request that is never
// answered it does not count at all.
func wrkFailed(w *loadtest.WrkResult) int64 {
	return w.Connect + w.Read + w.Write + w.Non2xx
}

func (r result) latencies() []time.Duration {
	var out []time.Duration
	for _, u := range r.upgrades {
		out = append(out, u.latency)
	}
	return out
}

// windowP99 is the p99 latency of the answered requests sent during an
// upgrade (from SIGHUP until the old generation exited) and of the others.
func (r result) windowP99() (window, steady time.Duration) {
	var in, out []time.Duration
	for _, s := range r.samples {
		if s.failed {
			continue
		}
		inside := false
		for _, u := range r.upgrades {
			if s.at >= u.at && s.at <= u.at+u.exited {
				inside = true
				break
			}
		}
		if inside {
			in = append(in, s.lat)
		} else {
			out = append(out, s.lat)
		}
	}
	return quantile(in, 0.99), quantile(out, 0.99)
}

// resumed is the share of HTTPS requests that resumed their TLS session:
// of all of them, and of each client's first request answered by a new
// generation (its session ticket is the previous generation's).
func (r result) resumed() (all, first float64) {
	var n, nr, f, fr int
	last := map[int]int{}
	for _, s := range r.samples {
		if s.failed {
			continue
		}
		n++
		if s.resumed {
			nr++
		}
		if prev, ok := last[s.client]; ok && prev != s.pid {
			f++
			if s.resumed {
				fr++
			}
		}
		last[s.client] = s.pid
	}
	if n > 0 {
		all = float64(nr) / float64(n)
	}
	if f > 0 {
		first = float64(fr) / float64(f)
	}
	return all, first
}

func (r result) summary() string {
	if r.err != nil && r.samples == nil && r.wrk == nil {
		return "ERROR: " + r.err.Error()
	}
	ok, failed := r.total()
	s := fmt.Sprintf("%d answered, %d failed, %d upgrades, median %v", ok, failed, len(r.upgrades), ms(median(r.latencies())))
	if r.wrk != nil {
		s += fmt.Sprintf("; wrk: read %d, timeout %d; machine: listen queue overflows %d, closed on unread data %d, data after close %d",
			r.wrk.Read, r.wrk.Timeout, r.listen.overflows, r.listen.abortOnClose, r.listen.abortOnData)
	}
	if d := r.drain; d.drains > 0 {
		s += fmt.Sprintf("; drains %d: closed idle past grace %d, new %d, waited for partial %d", d.drains, d.closedIdle, d.closedNew, d.partial)
	}
	if r.err != nil {
		s += "; ERROR: " + r.err.Error()
	}
	return s
}
