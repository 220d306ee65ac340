//go:build !unix

package tableflipprom

import (
	"os"

	"github.com/tableflip-go/tableflip/tableflip"
)

// newLink: tableflip upgrades nothing here (ErrNotSupported).
func newLink() (*link, *os.File, error) { return nil, nil, tableflip.ErrNotSupported }

func monotonicNow() mono { return 0 }
