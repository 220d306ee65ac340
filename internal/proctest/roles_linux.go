package proctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// This file helps write roles: the functions a re-executed test binary
// runs as one generation of a service.

// Upgrader is what the role helpers use of a *tableflip.Upgrader. proctest
// does not import tableflip, so that tableflip's own tests can use it.
type Upgrader interface {
	Pass(transport, key string, c syscall.Conn, meta []byte) error
	Ready() error
	Upgrade(ctx context.Context) (child int, err error)
	Fail(reason error)
}

// Conn is a file a role passes: a socket, or an *os.File.
type Conn interface {
	syscall.Conn
	io.Closer
}

// Fatal prints the event line "FATAL pid=N what: err" and returns 1, the
// exit code of a role that cannot go on. Expect fails the test on a FATAL
// line.
func Fatal(what string, err error) int {
	fmt.Printf("FATAL pid=%d %s: %v\n", os.Getpid(), what, err)
	return 1
}

// PassAndUpgrade is the first generation of a test in which the next one
// inherits a file that is not what its key names. It passes c under
// transport and key with meta, becomes ready, upgrades, and prints
//
//	UPGRADE pid=N child=C err="..."
//
// where err is the upgrade's error, which carries the child's reason. It
// returns 0 once the line is printed, whatever the upgrade's outcome: the
// test judges the line.
func PassAndUpgrade(upg Upgrader, transport, key string, c syscall.Conn, meta []byte) int {
	if err := upg.Pass(transport, key, c, meta); err != nil {
		return Fatal("pass", err)
	}
	if err := upg.Ready(); err != nil {
		return Fatal("ready", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	child, err := upg.Upgrade(ctx)
	fmt.Printf("UPGRADE pid=%d child=%d err=%q\n", os.Getpid(), child, fmt.Sprint(err))
	return 0
}

// RefuseInherited is the next generation of such a test when the
// transport call itself is under test: open claims the bad file and must
// refuse it. RefuseInherited counts the open descriptors before open and
// after it (and after closing what open returned, if it had no error),
// prints
//
//	CHILD pid=N wrongkind=W fds_before=B fds_after=A err=...
//
// where W says whether open's error wraps kind, fails the upgrade with
// that error (or one saying that open accepted the file), and returns 1.
func RefuseInherited(upg Upgrader, kind error, open func() (io.Closer, error)) int {
	before := OpenFds()
	c, err := open()
	if err == nil {
		c.Close()
	}
	after := OpenFds()
	fmt.Printf("CHILD pid=%d wrongkind=%v fds_before=%d fds_after=%d err=%v\n", os.Getpid(),
		errors.Is(err, kind), before, after, err)
	if err == nil {
		err = errors.New("the inherited file of the wrong kind was accepted")
	}
	upg.Fail(err)
	return 1
}

// ExpectRefused checks the lines of a process tree whose first generation
// is PassAndUpgrade and whose second is RefuseInherited: the child's error
// wraps the wrong-kind error, the child released the file it refused (one
// descriptor fewer than before: the upgrader holds it no longer), the
// parent's upgrade failed with the child's reason, and the parent exited 0.
func (p *Proc) ExpectRefused(reason string) {
	p.t.Helper()
	line := p.Expect("CHILD ")
	p.t.Log(line)
	f := Fields(line)
	if f["wrongkind"] != "true" {
		p.t.Errorf("the child's error does not wrap the wrong-kind error: %s", line)
	}
	before, _ := strconv.Atoi(f["fds_before"])
	after, _ := strconv.Atoi(f["fds_after"])
	if after != before-1 {
		p.t.Errorf("the child had %d descriptors before it claimed the file and %d after, want %d (the refused file released)", before, after, before-1)
	}
	if up := p.Expect("UPGRADE "); !strings.Contains(up, reason) {
		p.t.Errorf("parent: %s, want the child's reason %q", up, reason)
	}
	if code := p.Wait(); code != 0 {
		p.t.Errorf("parent exited %d, want 0", code)
	}
}
