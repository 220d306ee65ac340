//go:build unix

package tableflip

const supported = true
