package tableflip_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

func init() { roles["fdreserve"] = fdReserveMain }

// TestReadyKeepsAFdReserve: a new generation whose RLIMIT_NOFILE leaves it
// 15 descriptors free at Ready refuses to be ready, saying so, and its
// parent serves on; one left 16 takes over. Both are real children: the
// test binary re-executed, each lowering its own soft limit to the
// descriptors it holds plus the slack just before Ready.
func TestReadyKeepsAFdReserve(t *testing.T) {
	t.Parallel()
	p := proctest.Start(t, "fdreserve", "TFTEST_SLACKS=15,16")
	first := proctest.Fields(p.Expect("READY "))["pid"]

	refused := p.Expect("UPGRADE slack=15 ")
	t.Log(refused)
	f := proctest.Fields(refused)
	if f["result"] != "childerr" || f["pid"] != first {
		t.Fatalf("slack 15: %s, want a child error in pid %s\n%s", refused, first, p.Output())
	}
	for _, want := range []string{"too few file descriptors left: 15 free under the limit of", "needs 16"} {
		if !strings.Contains(refused, want) {
			t.Errorf("slack 15: the reason does not say %q", want)
		}
	}
	if line := p.Expect("READYERR "); proctest.Fields(line)["fewdescriptors"] != "true" {
		t.Errorf("the child's Ready: %s, want an error wrapping ErrFewDescriptors", line)
	}

	took := p.Expect("UPGRADE slack=16 ")
	if f := proctest.Fields(took); f["result"] != "ok" {
		t.Fatalf("slack 16: %s\n%s", took, p.Output())
	}
	child := p.Expect("READY ")
	if f := proctest.Fields(child); f["gen"] != "2" {
		t.Fatalf("the new generation: %s", child)
	}
	p.Expect("EXIT pid=" + first)
}

// limitLeaving is the RLIMIT_NOFILE under which exactly free descriptor
// numbers are unused: the open ones may have gaps, and numbers above the
// limit (a pipe inherited from the shell that ran the tests) do not count.
func limitLeaving(free int) int {
	ents, _ := os.ReadDir("/proc/self/fd")
	open := make(map[int]bool)
	for _, e := range ents {
		// The directory's own descriptor, closed by now, has no link.
		if _, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			n, _ := strconv.Atoi(e.Name())
			open[n] = true
		}
	}
	limit := 0
	for ; free > 0 || open[limit]; limit++ {
		if !open[limit] {
			free--
		}
	}
	return limit
}

// fdReserveMain is a generation that, with a parent, lowers its soft
// RLIMIT_NOFILE to the descriptors it holds plus TFTEST_FDSLACK and calls
// Ready; without one, it upgrades once per slack in TFTEST_SLACKS, and
// exits after the first upgrade that succeeds.
func fdReserveMain() int {
	pid := os.Getpid()
	var slack string
	upg, err := tableflip.New(tableflip.Options{
		Next: func(ctx context.Context, cmd *exec.Cmd) error {
			cmd.Env = append(cmd.Env, "TFTEST_FDSLACK="+slack)
			return nil
		},
	})
	if err != nil {
		fmt.Printf("FATAL pid=%d new: %v\n", pid, err)
		return 1
	}
	defer upg.Stop()
	ln, err := tcp.Listen(context.Background(), upg, "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Printf("FATAL pid=%d listen: %v\n", pid, err)
		return 1
	}
	defer ln.Close()
	if upg.HasParent() {
		n, _ := strconv.Atoi(os.Getenv("TFTEST_FDSLACK"))
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			fmt.Printf("FATAL pid=%d getrlimit: %v\n", pid, err)
			return 1
		}
		rl.Cur = uint64(limitLeaving(n))
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			fmt.Printf("FATAL pid=%d setrlimit: %v\n", pid, err)
			return 1
		}
	}
	if err := upg.Ready(); err != nil {
		fmt.Printf("READYERR pid=%d fewdescriptors=%v err=%v\n", pid, errors.Is(err, tableflip.ErrFewDescriptors), err)
		return 1
	}
	fmt.Printf("READY pid=%d gen=%d\n", pid, upg.Generation())
	if upg.HasParent() {
		io.Copy(io.Discard, os.Stdin) // until the test ends
		return 0
	}
	for _, s := range strings.Split(os.Getenv("TFTEST_SLACKS"), ",") {
		slack = s
		child, err := upg.Upgrade(context.Background())
		var ce *tableflip.ChildError
		switch {
		case errors.As(err, &ce):
			fmt.Printf("UPGRADE slack=%s pid=%d result=childerr child=%d reason=%q\n", s, pid, ce.Pid, ce.Reason)
		case err != nil:
			fmt.Printf("UPGRADE slack=%s pid=%d result=err err=%v\n", s, pid, err)
		default:
			fmt.Printf("UPGRADE slack=%s pid=%d result=ok child=%d\n", s, pid, child)
			<-upg.Exit()
			upg.Stop()
			fmt.Printf("EXIT pid=%d\n", pid)
			return 0
		}
	}
	fmt.Printf("FATAL pid=%d no upgrade succeeded\n", pid)
	return 1
}
