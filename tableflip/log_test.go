package tableflip_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Every lifecycle event is one structured line with the pid and generation.
func TestLifecycleIsLogged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	upg, err := tableflip.New(tableflip.Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := upg.Upgrade(context.Background()); !errors.Is(err, tableflip.ErrNotReady) {
		t.Fatalf("Upgrade before Ready: %v", err)
	}
	if err := upg.Ready(); err != nil {
		t.Fatal(err)
	}
	if err := upg.Ready(); !errors.Is(err, tableflip.ErrAlreadyReady) {
		t.Fatalf("second Ready: %v", err)
	}
	upg.Stop()
	upg.Stop() // idempotent
	if _, err := upg.Upgrade(context.Background()); !errors.Is(err, tableflip.ErrStopped) {
		t.Fatalf("Upgrade after Stop: %v", err)
	}
	for _, msg := range []string{"ready", "stopped"} {
		entries := logs.FilterMessage(msg).All()
		if len(entries) != 1 {
			t.Fatalf("%d %q lines", len(entries), msg)
		}
		fields := entries[0].ContextMap()
		if fields["pid"] != int64(os.Getpid()) || fields["generation"] != int64(1) {
			t.Fatalf("%q line fields %v", msg, fields)
		}
	}
}

// A name can be passed once: Pass, or Inherit, and not both.
func TestNameTakenOnce(t *testing.T) {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer upg.Stop()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := upg.Pass("pipe", "p", r, nil); err != nil {
		t.Fatal(err)
	}
	if err := upg.Pass("pipe", "p", w, nil); !errors.Is(err, tableflip.ErrDuplicate) {
		t.Fatalf("second Pass: %v", err)
	}
	if _, _, err := upg.Inherit("pipe", "p"); !errors.Is(err, tableflip.ErrDuplicate) {
		t.Fatalf("Inherit of a passed name: %v", err)
	}
	if _, _, err := upg.Inherit("pipe", "q"); !errors.Is(err, tableflip.ErrNotInherited) {
		t.Fatalf("Inherit of an unknown name: %v", err)
	}
}
