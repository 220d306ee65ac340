//go:build unix && !linux

package tableflip

const recvCloexec = false
