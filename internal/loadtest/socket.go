package loadtest

import "fmt"

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
		return fmt.Errorf("loadtest: the socket listening on %s is inode %d, want %d", l.Addr, inode, l.Inode)
	}
	held, err := HoldsSocket(pid, l.Inode)
	if err != nil {
		return err
	}
	if !held {
		return fmt.Errorf("loadtest: pid %d does not hold the socket listening on %s (inode %d)", pid, l.Addr, l.Inode)
	}
	return nil
}
