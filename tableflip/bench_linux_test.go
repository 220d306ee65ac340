package tableflip_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// benchChildMain is the next generation in BenchmarkUpgrade: it claims every
// listener its parent passed, becomes ready, and exits once the parent
// has stopped.
func benchChildMain() int {
	t0 := time.Now()
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		fmt.Println("FATAL", err)
		return 1
	}
	defer upg.Stop()
	t1 := time.Now()
	if p := os.Getenv("TFTEST_BENCH_PROFILE"); p != "" {
		// A CPU profile of the claims: TFTEST_BENCH_PROFILE=file.
		if f, err := os.Create(fmt.Sprintf("%s.%d", p, os.Getpid())); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	n, _ := strconv.Atoi(os.Getenv("TFTEST_BENCH_FDS"))
	if os.Getenv("TFTEST_BENCH_CLAIM") == "" {
		n = 0 // Ready closes them all
	}
	for i := 0; i < n; i++ {
		ln, err := tcp.Listen(context.Background(), upg, "tcp", extraAddr(i))
		if err != nil {
			upg.Fail(err)
			return 1
		}
		// Claimed: the upgrader keeps its copy for the next generation.
		// Closing ours keeps 10,000 within an open file limit of 20,000.
		ln.Close()
	}
	t2 := time.Now()
	if err := upg.Ready(); err != nil {
		return 1
	}
	if os.Getenv("TFTEST_BENCH_TRACE") != "" {
		// Where a child's time goes: go test -bench . -args with
		// TFTEST_BENCH_TRACE=1 in the environment.
		fmt.Fprintf(os.Stderr, "child: New %v, claim %v, Ready %v\n", t1.Sub(t0), t2.Sub(t1), time.Since(t2))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	upg.WaitForParent(ctx)
	return 0
}

// benchBaselineMain is the same binary doing nothing but start: the cost of
// a process start that every upgrade pays, measured in the same run.
func benchBaselineMain() int {
	os.Stdout.Write([]byte{'R'})
	io.Copy(io.Discard, os.Stdin)
	return 0
}

var baseline struct {
	once sync.Once
	d    time.Duration
}

// spawnBaseline is the mean time from starting the binary to its first
// byte on stdout.
func spawnBaseline(b *testing.B) time.Duration {
	baseline.once.Do(func() {
		exe, _ := os.Executable()
		const runs = 20
		var total time.Duration
		for i := 0; i < runs; i++ {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "TFTEST_ROLE=bench-baseline")
			out, _ := cmd.StdoutPipe()
			in, _ := cmd.StdinPipe()
			start := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			var buf [1]byte
			if _, err := io.ReadFull(out, buf[:]); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
			in.Close()
			cmd.Wait()
		}
		baseline.d = total / runs
	})
	return baseline.d
}

// BenchmarkUpgrade measures one upgrade, from the Upgrade call until the
// child is ready, with 1, 100 and 10,000 inherited TCP listeners, which the
// child claims (tcp.Listen) or leaves unclaimed. It reports the ratio to a
// bare process start of the same binary (x-start) and the cost per
// inherited fd beyond that start (ns/fd).
func BenchmarkUpgrade(b *testing.B) {
	base := spawnBaseline(b)
	b.Logf("baseline process start: %v", base)
	for _, claim := range []bool{true, false} {
		for _, n := range []int{1, 100, 10000} {
			name := fmt.Sprintf("fds=%d/claimed", n)
			if !claim {
				name = fmt.Sprintf("fds=%d/unclaimed", n)
			}
			b.Run(name, func(b *testing.B) {
				benchUpgrade(b, n, claim, base)
			})
		}
	}
}

// benchUpgrade: with claim, the child turns every inherited file into a
// listener with tcp.Listen, as a service would; without, it claims none and
// Ready closes them, which measures the handoff alone.
func benchUpgrade(b *testing.B, n int, claim bool, base time.Duration) {
	exe, _ := os.Executable()
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		upg, err := tableflip.New(tableflip.Options{
			Next: func(ctx context.Context, def *exec.Cmd) error {
				def.Path, def.Args = exe, []string{exe, "-test.run=^$"}
				def.Env = append(def.Env, "TFTEST_ROLE=bench-child", "TFTEST_BENCH_FDS="+strconv.Itoa(n))
				if claim {
					def.Env = append(def.Env, "TFTEST_BENCH_CLAIM=1")
				}
				return nil
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		// Only the upgrader's copies stay open: the open file limit
		// here may be as low as 20,000 and cannot be raised.
		for j := 0; j < n; j++ {
			ln, err := tcp.Listen(context.Background(), upg, "tcp", extraAddr(j))
			if err != nil {
				b.Fatal(err)
			}
			ln.Close()
		}
		if err := upg.Ready(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		pid, err := upg.Upgrade(context.Background())
		total += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		upg.Stop()
		proctest.WaitGone(b, pid)
		b.StartTimer()
	}
	mean := total / time.Duration(b.N)
	b.ReportMetric(float64(mean)/float64(base), "x-start")
	b.ReportMetric(float64(mean-base)/float64(n), "ns/fd")
}
