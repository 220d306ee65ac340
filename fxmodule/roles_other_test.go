//go:build !linux

package fxmodule_test

import "fmt"

func runRole(role string) int {
	fmt.Printf("FATAL role %q runs on Linux only\n", role)
	return 2
}

func setup() {}
