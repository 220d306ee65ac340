//go:build unix

package fxmodule_test

import "syscall"

var sigusr2 = syscall.SIGUSR2
