package example_test

import (
	"errors"
	"flag"
	"fmt"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/internal/example"
)

// The -log flag and the logger it asks for, as every example program has
// them.
func ExampleNewLogger() {
	fs := flag.NewFlagSet("udp", flag.ContinueOnError)
	logFormat := example.LogFlag(fs)
	fs.Parse([]string{"-log", "verbose"})
	_, err := example.NewLogger("udp", *logFormat)
	fmt.Println(err) // main prints it and exits with status 2
	// Output: udp: -log must be console, json or off
}

// The end of an example's main: the exit status says how serve ended.
func ExampleRun() {
	code := example.Run("prog", "off", func(log *zap.Logger) error {
		log.Info("serving") // -log off: nothing is written
		return errors.New("listen tcp 127.0.0.1:8080: address already in use")
	})
	fmt.Println("exit status", code)
	// Output: exit status 1
}
