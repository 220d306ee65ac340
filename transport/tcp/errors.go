package tcp

import (
	"errors"

	"github.com/tableflip-go/tableflip/tableflip"
)

func isNotInherited(err error) bool { return errors.Is(err, tableflip.ErrNotInherited) }
