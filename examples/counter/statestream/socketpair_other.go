//go:build !unix

package statestream

import (
	"os"

	"github.com/tableflip-go/tableflip/tableflip"
)

func socketpair() (ours, theirs *os.File, err error) { return nil, nil, tableflip.ErrNotSupported }
