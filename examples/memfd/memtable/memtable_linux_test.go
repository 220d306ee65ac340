package memtable_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/tableflip-go/tableflip/examples/memfd/memtable"
	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
)

// The table passes to the next generation as the same memory: same inode,
// same entries. Writes move with ownership: the child cannot write before
// it is ready, the parent cannot write once it has handed over, and the
// parent reads what the child wrote afterwards, from the shared memory.
func TestHandOver(t *testing.T) {
	p := proctest.Start(t, "holder", "MEMTEST_CHILD=good")
	gen1 := proctest.Fields(p.Expect("GEN1 "))
	if gen1["owner"] != "true" {
		t.Errorf("first generation does not own its table: %v", gen1)
	}
	child := proctest.Fields(p.Expect("CHILD "))
	if child["inherited"] != "true" || child["inode"] != gen1["inode"] || child["sum"] != gen1["sum"] {
		t.Errorf("child %v, parent %v: want the same memfd and entries", child, gen1)
	}
	if child["prewrite_notowner"] != "true" {
		t.Errorf("child wrote before it was ready: %v", child)
	}
	up := proctest.Fields(p.Expect("UPGRADED "))
	if up["owner"] != "false" || up["write_notowner"] != "true" {
		t.Errorf("parent after the upgrade: %v, want no more writes", up)
	}
	wrote := proctest.Fields(p.Expect("CHILDWROTE "))
	if wrote["ok"] != "true" {
		t.Fatalf("child could not write once ready: %v", wrote)
	}
	fmt.Fprintln(p.Stdin, "read")
	sees := proctest.Fields(p.Expect("PARENTSEES "))
	if sees["found"] != "true" || sees["child"] != wrote["pid"] {
		t.Errorf("parent reads %v, want the child's pid %s", sees, wrote["pid"])
	}
}

// When the upgrade fails, the parent takes the table back and writes
// again; the child never wrote.
func TestFailedUpgradeGivesTableBack(t *testing.T) {
	p := proctest.Start(t, "holder", "MEMTEST_CHILD=fail")
	p.Expect("GEN1 ")
	child := proctest.Fields(p.Expect("CHILD "))
	if child["inherited"] != "true" || child["prewrite_notowner"] != "true" {
		t.Errorf("child %v", child)
	}
	failed := p.Expect("UPGRADEFAILED ")
	if !strings.Contains(failed, "fails on purpose") {
		t.Errorf("upgrade error %s, want the child's reason", failed)
	}
	re := proctest.Fields(p.Expect("REWRITE "))
	if re["owner"] != "true" || re["ok"] != "true" {
		t.Errorf("after the failed upgrade: %v, want the parent to write again", re)
	}
}

// A file of the wrong kind under the table's name fails the child's Open
// with a clear error that reaches the parent, and leaves no descriptor.
func TestInheritedWrongKind(t *testing.T) {
	for _, tc := range []struct{ bad, want string }{
		{"pipe", "the file is not a memfd: pipe:"},
		{"udp", "the file is not a memfd: socket:"},
		{"unsealed", "not sealed against resizing"},
		{"notover", "did not hand it over"},
	} {
		t.Run(tc.bad, func(t *testing.T) {
			p := proctest.Start(t, "badparent", "MEMTEST_BAD="+tc.bad)
			line := p.Expect("OPENERR ")
			f := proctest.Fields(line)
			before, _ := strconv.Atoi(f["fds_before"])
			after, _ := strconv.Atoi(f["fds_after"])
			if before <= 0 || after >= before {
				// The claimed file is forgotten, so the upgrader's
				// copy is closed too: one fewer than before.
				t.Errorf("failed Open: %d descriptors before, %d after", before, after)
			}
			if !strings.Contains(line, `memtable: inherited table \"t\"`) || !strings.Contains(line, tc.want) {
				t.Errorf("child: %s, want %q", line, tc.want)
			}
			up := p.Expect("UPGRADE ")
			if !strings.Contains(up, tc.want) {
				t.Errorf("parent: %s, want the child's reason", up)
			}
			t.Log(line)
		})
	}
}

// Bad input in a first generation: each a clear error, no descriptor left.
func TestBadInput(t *testing.T) {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer upg.Stop()
	ctx := context.Background()
	for _, tc := range []struct {
		name, uri string
		is        error
		want      string
	}{
		{"unknown scheme", "memfs://t", tableflip.ErrUnknownTransport, `"memfs"`},
		{"bad slots", "memfd://t?slots=many", nil, `memtable: address "t?slots=many": slots`},
		{"too many slots", "memfd://t?slots=99999999999", nil, "want 1 to 16777216"},
		{"no name", "memfd://", nil, `table name ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proctest.ExpectError(t, func() error {
				_, err := tableflip.Open(ctx, upg, tc.uri)
				return err
			}, tc.is, tc.want)
		})
	}

	t.Run("table errors", func(t *testing.T) {
		before := proctest.OpenFds()
		c, err := tableflip.Open(ctx, upg, "memfd://small?slots=2")
		if err != nil {
			t.Fatal(err)
		}
		table := c.(*memtable.Table)
		if _, err := tableflip.Open(ctx, upg, "memfd://small"); !errors.Is(err, tableflip.ErrDuplicate) {
			t.Errorf("a second table of the same name: %v", err)
		}
		if err := table.Set(strings.Repeat("k", memtable.MaxKeyLen+1), 1); err == nil || !strings.Contains(err.Error(), "want 1 to 46") {
			t.Errorf("long key: %v", err)
		}
		table.Set("a", 1)
		table.Set("b", 2)
		if err := table.Set("c", 3); !errors.Is(err, memtable.ErrFull) {
			t.Errorf("third key in two slots: %v", err)
		}
		if v, err := table.Add("a", 41); v != 42 || err != nil {
			t.Errorf("Add: %d %v", v, err)
		}
		if n, _ := table.Len(); n != 2 {
			t.Errorf("Len %d", n)
		}
		table.Close()
		if err := table.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, _, err := table.Get("a"); !errors.Is(err, memtable.ErrClosed) {
			t.Errorf("Get after Close: %v", err)
		}
		// Close forgot the table: no descriptor of it is left, in this
		// code or in the upgrader.
		if after := proctest.OpenFds(); after != before {
			t.Errorf("%d descriptors before the table, %d after Close", before, after)
		}
	})
}
