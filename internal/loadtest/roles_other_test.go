//go:build !linux

package loadtest_test

import (
	"fmt"
	"os"
)

func runRole(role string) int {
	fmt.Fprintf(os.Stderr, "role %q needs Linux\n", role)
	return 2
}
