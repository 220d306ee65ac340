//go:build !unix

package tableflip

import (
	"os"
	"syscall"

	"go.uber.org/zap"
)

// loadActivation: there is no socket activation without unix sockets.
func loadActivation(log *zap.Logger) *activation { return nil }

// matchSocketAddress reports whether c is a socket that net.Listen or
// net.ListenPacket would have created for network and address. It is
// always false on platforms without systemd socket activation.
func matchSocketAddress(network, address string, c syscall.Conn) bool { return false }

func describeSocket(f *os.File) string { return "" }
