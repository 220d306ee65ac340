// Package tablefliptest provides an Upgrader that never upgrades, for unit
// tests and for platforms where tableflip.New returns ErrNotSupported
// (Windows).
//
// It is not a copy of the real Upgrader but the real one, built without a
// parent and without systemd: every method behaves as the real one does, in
// the same states and with the same errors (Upgrade before Ready returns
// ErrNotReady, a second Ready ErrAlreadyReady), with three differences.
// Nothing is ever inherited; Pass records the name (a second Pass of it is
// ErrDuplicate) but keeps no descriptor; Upgrade of a ready Upgrader returns
// ErrNotSupported. Any number of them may run in one process, beside the
// process's one tableflip.New.
package tablefliptest

import (
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/internal/seam"
)

// Upgrader is *tableflip.Upgrader, under the name older code uses.
type Upgrader = tableflip.Upgrader

// New returns an Upgrader in the initial state that never upgrades. A nil
// logger means none. Stop it as any Upgrader.
func New(log *zap.Logger) *tableflip.Upgrader {
	return seam.NewStandalone(log).(*tableflip.Upgrader)
}
