package fxmodule_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if role := os.Getenv("TFTEST_ROLE"); role != "" {
		os.Exit(runRole(role))
	}
	setup()
	goleak.VerifyTestMain(m)
}
