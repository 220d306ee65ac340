package example_test

import (
	"errors"
	"flag"
	"testing"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/internal/example"
)

func TestLogFlag(t *testing.T) {
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	format := example.LogFlag(fs)
	if *format != "console" {
		t.Errorf("default -log %q, want console", *format)
	}
	if err := fs.Parse([]string{"-log", "json"}); err != nil || *format != "json" {
		t.Errorf("-log json: %q %v", *format, err)
	}
}

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		format  string
		enabled bool   // logs errors
		err     string // the error, if any
	}{
		{format: "console", enabled: true},
		{format: "json", enabled: true},
		{format: "off"},
		{format: "verbose", err: "prog: -log must be console, json or off"},
		{format: "", err: "prog: -log must be console, json or off"},
	} {
		log, err := example.NewLogger("prog", tc.format)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || log != nil {
				t.Errorf("%q: %v %v, want the error %q", tc.format, log, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.format, err)
			continue
		}
		if got := log.Core().Enabled(zap.ErrorLevel); got != tc.enabled {
			t.Errorf("%q: logs errors: %v, want %v", tc.format, got, tc.enabled)
		}
		if log.Core().Enabled(zap.DebugLevel) {
			t.Errorf("%q: logs debug messages, want info and up", tc.format)
		}
	}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		format string
		err    error
		want   int
		served bool
	}{
		{format: "off", want: 0, served: true},
		{format: "off", err: errors.New("serve: broken"), want: 1, served: true},
		{format: "verbose", want: 2},
	} {
		served := false
		code := example.Run("prog", tc.format, func(log *zap.Logger) error {
			served = log != nil
			return tc.err
		})
		if code != tc.want || served != tc.served {
			t.Errorf("-log %s, serve returning %v: status %d, served %v; want %d, %v", tc.format, tc.err, code, served, tc.want, tc.served)
		}
	}
}
