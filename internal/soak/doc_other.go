//go:build !linux

// Command soak upgrades examples/counter 200 times under load; it reads
// /proc and runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "soak: Linux only (it reads /proc)")
	os.Exit(1)
}
