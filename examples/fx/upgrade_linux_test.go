package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// upgrades is how many consecutive upgrades the load test drives.
const upgrades = 20

// startServer starts the program with args and -record, waits until it
// is ready, and kills whatever is left of it when the test ends. It
// returns the record file's path.
func startServer(t *testing.T, p exampletest.Program, args ...string) (*exampletest.Server, string) {
	t.Helper()
	record := filepath.Join(t.TempDir(), "record")
	return p.Start(t, append(args, "-record", record)...), record
}

// TestUpgradesUnderLoad upgrades the service 20 times while two loads run,
// one with a new connection per request and one with keep-alive
// connections: no request fails, every generation serves, each old
// generation exits 0 after its drain, and SIGTERM ends the last one with 0.
// Meanwhile the worker's record shows every item done exactly once, with no
// gap, each generation doing one run of items after the previous one, and
// the item in flight at each upgrade finished by the old generation.
func TestUpgradesUnderLoad(t *testing.T) {
	t.Parallel()
	srv, record := startServer(t, program, "-addr", "127.0.0.1:0", "-item", "10ms")
	ln := srv.Listener(t)
	loads := exampletest.StartLoads(t, loadtest.Target{URL: "http://" + ln.Addr + "/"}, 4)
	srv.UpgradeUnderLoad(t, ln, upgrades, loads...)
	srv.StopLoads(t, loads...)
	srv.StopClean(t)
	checkRecord(t, record, srv.Generations(), 0)
}

// checkRecord checks the worker's record of a run through the generations
// gens (pids, first one first) that ended with SIGTERM, with wantFailed
// failed upgrades on the way.
func checkRecord(t *testing.T, path string, gens []int, wantFailed int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doneBy := map[int]int{} // item -> pid
	var order []int         // items in the order they were done
	type handoff struct{ next, inflight, pid int }
	var handoffs, stops []handoff
	starts := map[int]int{} // pid -> first item
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var item, pid, gen, next, inflight int
		switch {
		case strings.HasPrefix(line, "DONE "):
			if _, err := fmt.Sscanf(line, "DONE item=%d pid=%d gen=%d", &item, &pid, &gen); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if by, dup := doneBy[item]; dup {
				t.Errorf("item %d done twice: by pid %d and by pid %d", item, by, pid)
			}
			doneBy[item] = pid
			order = append(order, item)
		case strings.HasPrefix(line, "START "):
			if _, err := fmt.Sscanf(line, "START pid=%d gen=%d next=%d", &pid, &gen, &next); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			starts[pid] = next
		case strings.HasPrefix(line, "HANDOFF "), strings.HasPrefix(line, "STOP "):
			kind, _, _ := strings.Cut(line, " ")
			if _, err := fmt.Sscanf(line, kind+" next=%d inflight=%d pid=%d", &next, &inflight, &pid); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if kind == "STOP" {
				stops = append(stops, handoff{next, inflight, pid})
			} else {
				handoffs = append(handoffs, handoff{next, inflight, pid})
			}
		default:
			t.Errorf("unknown record line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// Every item from 0 to the last one, once, in order.
	for i, item := range order {
		if item != i {
			t.Fatalf("record: the %dth item done is %d, want %d (a gap or a repeat)", i, item, i)
		}
	}
	if len(order) == 0 {
		t.Fatal("record: no item done")
	}
	// Each generation did one run of items, after the previous one.
	pos := map[int]int{}
	for i, pid := range gens {
		pos[pid] = i
	}
	last := -1
	for _, item := range order {
		g, ok := pos[doneBy[item]]
		if !ok {
			t.Fatalf("item %d done by pid %d, not a generation %v", item, doneBy[item], gens)
		}
		if g < last {
			t.Fatalf("item %d done by generation %d after generation %d worked", item, g+1, last+1)
		}
		last = g
	}
	// A handoff hands item h.next to the next generation, or, when the
	// upgrade failed, back to the old one, which resumes with it.
	withInflight, next, failed := 0, 1, 0
	for i, h := range handoffs {
		by, done := doneBy[h.next]
		if done && by == h.pid {
			failed++
		} else {
			if next >= len(gens) || h.pid != gens[next-1] {
				t.Errorf("handoff %d by pid %d, want the generation %d", i+1, h.pid, gens[min(next-1, len(gens)-1)])
				continue
			}
			child := gens[next]
			next++
			if starts[child] != h.next {
				t.Errorf("handoff %d: pid %d handed over item %d, pid %d started at %d", i+1, h.pid, h.next, child, starts[child])
			}
			if done && by != child {
				t.Errorf("handoff %d: item %d, the first after it, done by pid %d, want the new generation %d", i+1, h.next, by, child)
			}
		}
		if h.next > 0 && doneBy[h.next-1] != h.pid {
			t.Errorf("handoff %d: item %d, before the handoff, done by pid %d, want the old generation %d", i+1, h.next-1, doneBy[h.next-1], h.pid)
		}
		if h.inflight >= 0 {
			withInflight++
			if h.inflight != h.next-1 || doneBy[h.inflight] != h.pid {
				t.Errorf("handoff %d: item %d in flight, done by pid %d, want it finished first by the old generation %d", i+1, h.inflight, doneBy[h.inflight], h.pid)
			}
		}
	}
	if next != len(gens) {
		t.Errorf("%d handoffs to a new generation, want %d", next-1, len(gens)-1)
	}
	if failed != wantFailed {
		t.Errorf("%d handoffs of failed upgrades, want %d", failed, wantFailed)
	}
	t.Logf("record: %d items done by %d generations; %d of %d handoffs (%d of failed upgrades) finished an item in flight first", len(order), len(gens), withInflight, len(handoffs), failed)
	if withInflight == 0 {
		t.Errorf("no handoff had an item in flight: the test did not exercise it")
	}
	// The final stop finished its item in flight too.
	if len(stops) != 1 || stops[0].pid != gens[len(gens)-1] {
		t.Fatalf("stops %v, want one by the last generation %d", stops, gens[len(gens)-1])
	}
	if s := stops[0]; s.next != len(order) || (s.inflight >= 0 && s.inflight != len(order)-1) {
		t.Errorf("stop: next=%d inflight=%d, with %d items done", s.next, s.inflight, len(order))
	}
}

// TestAnswer checks the stable contract of GET /: 200 and pid=<pid of the
// serving process>.
func TestAnswer(t *testing.T) {
	t.Parallel()
	srv, _ := startServer(t, program, "-addr", "127.0.0.1:0")
	srv.CheckAnswer(t, "http://"+srv.Listener(t).Addr+"/")
	srv.StopClean(t)
}

// TestUnixSocket serves on -socket PATH through a few upgrades under load:
// no request fails, the path stays bound, and after SIGTERM it is gone.
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fx.sock")
	srv, record := startServer(t, program, "-socket", path)
	loads := exampletest.StartLoads(t, loadtest.Target{URL: "http://unix/", UnixSocket: path}, 2)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		for _, l := range loads {
			if err := l.WaitServed(ctx, srv.PID(), 5); err != nil {
				t.Fatal(err)
			}
		}
		up, err := srv.Upgrade(ctx)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			t.Errorf("upgrade %d: old generation: %v, want exit status 0", i, up.OldExit)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Fatalf("upgrade %d: %s: %v %v, want the socket", i, path, fi, err)
		}
	}
	for _, l := range loads {
		if err := l.WaitServed(ctx, srv.PID(), 5); err != nil {
			t.Fatal(err)
		}
		if s := l.Stop(); s.Failures != 0 {
			t.Errorf("%v", s)
		}
	}
	srv.StopClean(t)
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("after SIGTERM: lstat %s: %v, want it gone", path, err)
	}
	checkRecord(t, record, srv.Generations(), 0)
}
