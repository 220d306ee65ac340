package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// scrape GETs url (a /metrics) and parses what it answers.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return mfs
}

// find returns the metric of family name whose labels are labels
// ("k=v" pairs), nil when there is none.
func find(mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if len(got) != len(labels) {
			continue
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is the value of a gauge or a counter, -1 when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	m := find(mfs, name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return -1
}

// observations is the sample count of a histogram, -1 when there is none.
func observations(mfs map[string]*dto.MetricFamily, name string, labels ...string) int {
	m := find(mfs, name, labels...)
	if m == nil || m.Histogram == nil {
		return -1
	}
	return int(m.Histogram.GetSampleCount())
}

// want is what a scrape must show.
type want struct {
	generation         int
	succeeded          int
	failed             map[string]int // by reason
	drains             int
	inheritedTCP       int // -1: no such metric (the first generation inherits nothing)
	durationsSucceeded int
	durationsFailed    int
}

// check compares a scrape with w and returns what differs.
func (w want) check(mfs map[string]*dto.MetricFamily) []string {
	var diffs []string
	expect := func(what string, got, want float64) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", what, got, want))
		}
	}
	expect("tableflip_generation", value(mfs, "tableflip_generation"), float64(w.generation))
	expect("tableflip_upgrade_in_progress", value(mfs, "tableflip_upgrade_in_progress"), 0)
	succeeded := -1.0
	if w.succeeded > 0 {
		succeeded = float64(w.succeeded)
	}
	expect(`tableflip_upgrades_total{result="succeeded",reason="none"}`,
		value(mfs, "tableflip_upgrades_total", "result=succeeded", "reason=none"), succeeded)
	failures := 0
	for _, mf := range []*dto.MetricFamily{mfs["tableflip_upgrades_total"]} {
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[1].GetValue() == "failed" || m.GetLabel()[0].GetValue() != "none" {
				failures++
			}
		}
	}
	for reason, n := range w.failed {
		expect(fmt.Sprintf(`tableflip_upgrades_total{result="failed",reason=%q}`, reason),
			value(mfs, "tableflip_upgrades_total", "result=failed", "reason="+reason), float64(n))
	}
	expect("series of failed upgrades", float64(failures), float64(len(w.failed)))
	expect(`tableflip_upgrade_duration_seconds_count{result="succeeded"}`,
		float64(observations(mfs, "tableflip_upgrade_duration_seconds", "result=succeeded")), float64(w.durationsSucceeded))
	expect(`tableflip_upgrade_duration_seconds_count{result="failed"}`,
		float64(observations(mfs, "tableflip_upgrade_duration_seconds", "result=failed")), float64(w.durationsFailed))
	expect("tableflip_drain_duration_seconds_count", float64(observations(mfs, "tableflip_drain_duration_seconds")), float64(w.drains))
	expect(`tableflip_inherited_files{transport="tcp"}`, value(mfs, "tableflip_inherited_files", "transport=tcp"), float64(w.inheritedTCP))
	created := 1.0 // the first generation creates the listener, the others inherit it
	if w.inheritedTCP > 0 {
		created = -1
	}
	expect(`tableflip_created_files{transport="tcp"}`, value(mfs, "tableflip_created_files", "transport=tcp"), created)
	return diffs
}

// waitMetrics scrapes url until it shows w. The counts of an old
// generation's drain reach the new one's /metrics a moment after the old
// one has exited, so it scrapes again (each time on a new connection)
// until they match, within loadtest.DefaultTimeout.
func waitMetrics(t testing.TB, url string, w want) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(loadtest.DefaultTimeout)
	for {
		mfs := scrape(t, url)
		diffs := w.check(mfs)
		if len(diffs) == 0 {
			return mfs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %v:\n%s", url, loadtest.DefaultTimeout, strings.Join(diffs, "\n"))
		}
		time.Sleep(20 * time.Millisecond) // a scrape's interval, not a wait for a state
	}
}

// TestMetricsAcrossUpgrades scrapes /metrics of the real binary through
// upgrades, two failed ones among them, under load: the generation grows
// by one per upgrade, the serving generation's counters hold every upgrade
// since the first generation (a success is counted by the generation it
// made, a failure by the one that keeps serving), each failure under its
// reason, and every upgrade and drain is observed in its histogram. The
// load sees no failed request.
func TestMetricsAcrossUpgrades(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "metrics")
	srv := program.Deploy(t, bin).Start(t, "-addr", "127.0.0.1:0", "-log", "json")
	ln := srv.Listener(t)
	url := "http://" + ln.Addr + "/metrics"
	load, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + ln.Addr + "/"}, Mode: loadtest.KeepAlive, Clients: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()

	w := want{generation: 1, inheritedTCP: -1, failed: map[string]int{}}
	waitMetrics(t, url, w)
	w.inheritedTCP = 1
	upgrade := func() {
		t.Helper()
		up, err := srv.Upgrade(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			t.Errorf("old generation: %v, want exit status 0", up.OldExit)
		}
		w.generation++
		w.succeeded++
		w.durationsSucceeded++
		w.drains++
		mfs := waitMetrics(t, url, w)
		h := find(mfs, "tableflip_upgrade_duration_seconds", "result=succeeded").Histogram
		t.Logf("generation %d (pid %d): %d upgrades took %.3fs in all, drains %.3fs",
			w.generation, up.NewPID, h.GetSampleCount(), h.GetSampleSum(), find(mfs, "tableflip_drain_duration_seconds").Histogram.GetSampleSum())
		if err := load.WaitServed(context.Background(), up.NewPID, 5); err != nil {
			t.Fatal(err)
		}
	}
	failUpgrade := func(reason string) {
		t.Helper()
		from := srv.Stderr.Len()
		if err := syscall.Kill(srv.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line, _ := srv.Stderr.Wait(t, from, `"msg":"upgrade failed, still serving"`, fmt.Sprintf(`"pid":%d`, srv.PID()))
		if !strings.Contains(line, fmt.Sprintf(`"reason":%q`, reason)) {
			t.Errorf("failed upgrade logged as %s, want reason %s", line, reason)
		}
		w.failed[reason]++
		w.durationsFailed++
		waitMetrics(t, url, w)
	}

	for range 3 {
		upgrade()
	}

	// A binary that exits at once, as a bad deploy does.
	good := filepath.Join(dir, "metrics.good")
	exampletest.CopyFile(t, program.Path, good)
	deploy := func(script string) {
		t.Helper()
		tmp := filepath.Join(dir, "deploy")
		if err := os.WriteFile(tmp, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, bin); err != nil {
			t.Fatal(err)
		}
	}
	deploy("echo 'config invalid' >&2; exit 1")
	failUpgrade("child_exited")
	// A binary that starts but cannot listen: it tells its parent why.
	deploy(`exec ` + good + ` "$@" -addr 127.0.0.1:99999`)
	failUpgrade("child_failed")
	failUpgrade("child_failed")

	// The next successful upgrade carries the failures to the new generation.
	exampletest.CopyFile(t, good, bin)
	upgrade()

	srv.CheckStats(t, load.Stop())
	srv.StopClean(t)
	checkLogFields(t, srv.Stderr.String())
}

// checkLogFields checks that the program's log names things the same way
// on every line, the upgrader's and the program's own: each line has the
// pid and the generation, the lines that end something timed have its
// duration, and the failures have their error.
func checkLogFields(t *testing.T, log string) {
	t.Helper()
	timed := map[string]bool{"upgrade succeeded": true, "upgrade failed": true, "upgrade failed, still serving": true, "drained": true, "inherited from parent": true}
	failures := map[string]bool{"upgrade failed": true, "upgrade failed, still serving": true}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue // the broken binary's own words
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Errorf("log line %q: %v", line, err)
			continue
		}
		msg, _ := fields["msg"].(string)
		seen[msg]++
		_, pid := fields["pid"].(float64)
		_, gen := fields["generation"].(float64)
		if !pid || !gen {
			t.Errorf("log line without a numeric pid and generation: %s", line)
		}
		if _, ok := fields["duration"].(float64); timed[msg] && !ok {
			t.Errorf("log line without its duration: %s", line)
		}
		if _, ok := fields["error"].(string); failures[msg] && !ok {
			t.Errorf("log line without its error: %s", line)
		}
		for k := range fields {
			switch k {
			case "elapsed", "took", "err", "gen", "PID", "process":
				t.Errorf("log line names %q differently: %s", k, line)
			}
		}
	}
	for _, msg := range []string{"upgrade succeeded", "upgrade failed, still serving", "drained", "ready"} {
		if seen[msg] == 0 {
			t.Errorf("no %q line in the log", msg)
		}
	}
}
