package tableflip

import "fmt"

// State is where an Upgrader is in its life:
//
//	initial -> ready -> upgrading -> upgraded (exit now)
//	                       |
//	                       +-> ready (the upgrade failed)
//	any -> stopped
type State int

const (
	// StateInitial: created, inherited files may still be claimed.
	StateInitial State = iota
	// StateReady: serving; an upgrade may start.
	StateReady
	// StateUpgrading: a child is starting.
	StateUpgrading
	// StateUpgraded: a child is ready; this generation must drain and exit.
	StateUpgraded
	// StateStopped: Stop was called.
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateInitial:
		return "initial"
	case StateReady:
		return "ready"
	case StateUpgrading:
		return "upgrading"
	case StateUpgraded:
		return "upgraded"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int(s))
}
