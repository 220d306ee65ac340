//go:build !unix

package fdutil

func inspect(fd int) (SocketInfo, error) { return SocketInfo{}, ErrNotSupported }
func acceptConn(fd int) bool             { return false }
