package inherit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Conn is a socket a transport returns and passes on.
type Conn interface {
	syscall.Conn
	io.Closer
}

// OrCreate returns the socket the previous generation passed under
// transport and key, converted by fromFile, or, if it passed none, a new
// one from create, which OrCreate passes on under the same name without
// metadata. Either way the next generation inherits it.
//
// fromFile gets the inherited file and returns a socket of its own, as
// net.FileListener does: OrCreate closes the file afterwards. A file that
// fromFile refuses is forgotten too, since no generation can use it under
// this key.
//
// Errors start with pkg, the transport package's name. They name the
// transport and key and say whether the file was inherited, except
// create's, which name the address already (net's do).
func OrCreate[C Conn](fds tableflip.Fds, pkg, transport, key string, fromFile func(*os.File) (C, error), create func() (C, error)) (C, error) {
	var none C
	f, _, err := fds.Inherit(transport, key)
	switch {
	case err == nil:
		defer f.Close()
		c, err := fromFile(f)
		if err != nil {
			fds.Forget(transport, key)
			return none, fmt.Errorf("%s: inherited %s %s: %w", pkg, transport, key, err)
		}
		return c, nil
	case !errors.Is(err, tableflip.ErrNotInherited):
		return none, fmt.Errorf("%s: %s %s: %w", pkg, transport, key, err)
	}
	c, err := create()
	if err != nil {
		return none, fmt.Errorf("%s: %w", pkg, err)
	}
	if err := fds.Pass(transport, key, c, nil); err != nil {
		c.Close()
		return none, fmt.Errorf("%s: %s %s: %w", pkg, transport, key, err)
	}
	return c, nil
}
