package loadtest

import (
	"errors"
	"fmt"
)

// The errors of ListenerInode and HeldBy wrap one of these.
var (
	// ErrNoListener: no socket listens on the address.
	ErrNoListener = errors.New("loadtest: no listening socket")
	// ErrManyListeners: more than one socket listens on the address.
	ErrManyListeners = errors.New("loadtest: more than one listening socket")
	// ErrOtherSocket: the socket listening on the address is another one.
	ErrOtherSocket = errors.New("loadtest: another listening socket")
	// ErrNotHeld: the process does not hold the listening socket.
	ErrNotHeld = errors.New("loadtest: socket not held")
)

// HeldBy checks that l is still the socket listening on its address, the
// only one there, and that pid holds it: that a new generation serves from
// the socket its predecessors did. It returns an error saying which part
// does not hold.
func (l Listener) HeldBy(pid int) error {
	inode, err := ListenerInode(l.Network, l.Addr)
	if err != nil {
		return err
	}
	if inode != l.Inode {
		return fmt.Errorf("%w: the socket listening on %s is inode %d, want %d", ErrOtherSocket, l.Addr, inode, l.Inode)
	}
	held, err := HoldsSocket(pid, l.Inode)
	if err != nil {
		return err
	}
	if !held {
		return fmt.Errorf("%w: pid %d does not hold the socket listening on %s (inode %d)", ErrNotHeld, pid, l.Addr, l.Inode)
	}
	return nil
}
