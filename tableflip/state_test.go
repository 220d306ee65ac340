package tableflip

import "testing"

func TestStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[lifeState]string{
		stateInitial: "initial", stateReady: "ready", stateUpgrading: "upgrading",
		stateUpgraded: "upgraded", stateStopped: "stopped", lifeState(42): "state(42)",
	} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int(s), s.String(), want)
		}
	}
}
