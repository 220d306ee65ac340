//go:build unix

package tableflipprom_test

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tableflip-go/tableflip/examples/metrics/tableflipprom"
	"github.com/tableflip-go/tableflip/tableflip"
)

// TestFailedUpgradesCounted runs real upgrades whose child is a shell
// that fails in a known way, and checks that each is counted under the
// reason the core's error maps to, with its duration, and that no upgrade
// is left in progress.
func TestFailedUpgradesCounted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		opts   tableflip.Options
		reason string
	}{
		{name: "exits", script: "exit 3", reason: tableflipprom.ReasonChildExited},
		{name: "hangs", script: "exec sleep 30", reason: tableflipprom.ReasonTimeout,
			opts: tableflip.Options{UpgradeTimeout: 300 * time.Millisecond, KillGrace: 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Next = func(ctx context.Context, cmd *exec.Cmd) error {
				cmd.Path, cmd.Args = "/bin/sh", []string{"sh", "-c", tc.script}
				return nil
			}
			upg, err := tableflip.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer upg.Stop()
			metrics, err := tableflipprom.New(upg)
			if err != nil {
				t.Fatal(err)
			}
			defer metrics.Close()
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(metrics)
			if err := upg.Ready(); err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 2; i++ {
				_, err := upg.Upgrade(context.Background())
				var ce *tableflip.ChildError
				if !errors.As(err, &ce) {
					t.Fatalf("upgrade %d: %v, want a ChildError", i, err)
				}
				if got := tableflipprom.Reason(err); got != tc.reason {
					t.Errorf("upgrade %d: Reason(%v) = %q, want %q", i, err, got, tc.reason)
				}
				mfs, err := reg.Gather()
				if err != nil {
					t.Fatal(err)
				}
				if got := counter(mfs, "tableflip_upgrades_total", "failed", tc.reason); got != float64(i) {
					t.Errorf("after %d failures: tableflip_upgrades_total{result=failed,reason=%s} = %v", i, tc.reason, got)
				}
				if h := histogram(mfs, "tableflip_upgrade_duration_seconds", "failed"); h.GetSampleCount() != uint64(i) || h.GetSampleSum() <= 0 {
					t.Errorf("after %d failures: failed upgrade durations %v", i, h)
				}
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			if n := gauge(mfs, "tableflip_upgrade_in_progress"); n != 0 {
				t.Errorf("tableflip_upgrade_in_progress = %v after the upgrades", n)
			}
		})
	}
}

func counter(mfs []*dto.MetricFamily, name, result, reason string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["result"] == result && l["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func histogram(mfs []*dto.MetricFamily, name, result string) *dto.Histogram {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == result {
				return m.GetHistogram()
			}
		}
	}
	return nil
}

// gauge is the value of the unlabelled gauge name, -1 when there is none.
func gauge(mfs []*dto.MetricFamily, name string) float64 {
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}
