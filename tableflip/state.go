package tableflip

import "fmt"

// lifeState is where an Upgrader is in its life:
//
//	initial -> ready -> upgrading -> upgraded (exit now)
//	             ^         |              |
//	             |         +-> ready      +-> ready (take-back: the
//	             |        (the upgrade        successor died, see
//	             |         failed)            Upgrader.Resumed)
//	any -> stopped
type lifeState int

const (
	// stateInitial: created, inherited files may still be claimed.
	stateInitial lifeState = iota
	// stateReady: serving; an upgrade may start.
	stateReady
	// stateUpgrading: a child is starting.
	stateUpgrading
	// stateUpgraded: a child is ready; this generation must drain and exit.
	stateUpgraded
	// stateStopped: Stop was called.
	stateStopped
)

func (s lifeState) String() string {
	switch s {
	case stateInitial:
		return "initial"
	case stateReady:
		return "ready"
	case stateUpgrading:
		return "upgrading"
	case stateUpgraded:
		return "upgraded"
	case stateStopped:
		return "stopped"
	}
	return fmt.Sprintf("state(%d)", int(s))
}
