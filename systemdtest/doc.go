// Package systemdtest runs the example units of examples/systemd under a
// real systemd: version 252 (the installed one, Debian 12's) and 254
// (from bookworm-backports, unpacked into a cache by fetch-systemd.sh),
// each booted as PID 1 of a private pid and mount namespace by boot.sh,
// fenced off from the machine (see boot.sh for every protection).
//
// The tests are behind the build tag systemdtest, so that go test ./...
// does not boot systemd; they need root:
//
//	bash systemdtest/fetch-systemd.sh ~/.cache/tableflip-systemdtest/systemd-254
//	go test -tags systemdtest -v ./systemdtest
//
// TFTEST_SYSTEMD_254 names another tree to use for 254.
package systemdtest
