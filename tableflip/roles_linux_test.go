package tableflip_test

// roles are the programs the test binary plays when re-executed.
var roles = map[string]func() int{
	"server":         serverMain,
	"systemd":        systemdMain,
	"bench-child":    benchChildMain,
	"bench-baseline": benchBaselineMain,
	"fakechild":      fakeChildMain,
}
