//go:build !unix

package tableflip

import (
	"os"
	"syscall"
)

func exitSignal(*os.ProcessState) syscall.Signal { return 0 }

func signalName(sig syscall.Signal) string { return sig.String() }
