package tableflip

import (
	"syscall"
	"testing"
)

// setActivation gives u socket activation's files, as New does.
func setActivation(u *Upgrader, a *activation) { u.do(func() { u.s.activated = a }) }

// addInherited puts a duplicate of c among the files u inherited.
func addInherited(t *testing.T, u *Upgrader, transport, key string, c syscall.Conn) {
	t.Helper()
	fd, err := dupConn(c, key)
	if err != nil {
		t.Fatal(err)
	}
	u.do(func() { u.s.inherited[entryName(transport, key)] = &entry{transport: transport, key: key, fd: fd} })
}
