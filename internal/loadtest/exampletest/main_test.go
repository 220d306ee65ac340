package exampletest_test

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// program is this test binary as a small program (run).
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.MainOrRun(m, &program, run)
}

// run is the program: "exit N" prints a line on stdout and one on stderr
// and exits with N; "serve -pidfile P" writes its pid to P, as a server
// generation does when it is ready, and exits 0 on SIGTERM.
func run(args []string) int {
	if len(args) == 2 && args[0] == "exit" {
		fmt.Println("out")
		fmt.Fprintln(os.Stderr, "err")
		code, _ := strconv.Atoi(args[1])
		return code
	}
	if len(args) == 3 && args[0] == "serve" && args[1] == "-pidfile" {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		pid := os.Getpid()
		tmp := filepath.Join(filepath.Dir(args[2]), "pid.tmp")
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.Rename(tmp, args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("ready pid=%d\n", pid)
		fmt.Fprint(os.Stderr, "serving ")
		fmt.Fprintf(os.Stderr, "pid=%d\n", pid)
		<-term
		fmt.Fprintln(os.Stderr, "stopping")
		return 0
	}
	fmt.Fprintf(os.Stderr, "usage: exit N | serve -pidfile P (got %q)\n", args)
	return 2
}
