package memtable_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/examples/memfd/memtable"
	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
)

func runRole(role string) int {
	switch role {
	case "holder":
		return holderMain()
	case "badparent":
		return badParentMain()
	}
	fmt.Printf("FATAL unknown role %q\n", role)
	return 2
}

func setup() {
	if err := proctest.SetSubreaper(); err != nil {
		panic(err)
	}
}

const tableName = "t"

// holderMain is one generation that holds the table.
//
// The first generation fills it, prints GEN1, becomes ready and upgrades
// to a child in mode MEMTEST_CHILD:
//
//	good  the child inherits the table, cannot write before Ready, writes
//	      "child" once ready
//	fail  the child inherits the table, then fails its upgrade
//
// After a good upgrade the first generation tries to write (it must not),
// then waits for a line on stdin and reads what the child wrote, from the
// same memory. After a failed one it writes again.
func holderMain() int {
	pid := os.Getpid()
	upg, err := tableflip.New(tableflip.Options{KillGrace: 2 * time.Second})
	if err != nil {
		fmt.Printf("FATAL pid=%d new: %v\n", pid, err)
		return 1
	}
	defer upg.Stop()
	before := proctest.OpenFds()
	table, err := memtable.Open(context.Background(), upg, tableName, memtable.Options{Slots: 256})
	if err != nil {
		fmt.Printf("OPENERR pid=%d fds_before=%d fds_after=%d err=%q\n", pid, before, proctest.OpenFds(), err)
		upg.Fail(err)
		return 1
	}
	defer table.Close()
	info := table.Info()

	if upg.HasParent() {
		werr := table.Set("early", 1)
		fmt.Printf("CHILD pid=%d inherited=%v inode=%d sum=%s prewrite_notowner=%v\n", pid, info.Inherited, info.Inode, sum(table), errors.Is(werr, memtable.ErrNotOwner))
		if os.Getenv("MEMTEST_CHILD") == "fail" {
			upg.Fail(errors.New("memtest: this child fails on purpose"))
			return 1
		}
		if err := upg.Ready(); err != nil {
			fmt.Printf("FATAL pid=%d ready: %v\n", pid, err)
			return 1
		}
		err := table.Set("child", uint64(pid))
		fmt.Printf("CHILDWROTE pid=%d ok=%v err=%q\n", pid, err == nil, fmt.Sprint(err))
		<-upg.Exit() // killed by the test's cleanup
		return 0
	}

	for i := range 100 {
		if err := table.Set("key"+strconv.Itoa(i), uint64(i*i)); err != nil {
			fmt.Printf("FATAL pid=%d set: %v\n", pid, err)
			return 1
		}
	}
	if err := upg.Ready(); err != nil {
		fmt.Printf("FATAL pid=%d ready: %v\n", pid, err)
		return 1
	}
	fmt.Printf("GEN1 pid=%d inode=%d sum=%s owner=%v\n", pid, info.Inode, sum(table), table.Owner())
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Timeout)
	defer cancel()
	child, err := upg.Upgrade(ctx)
	if err != nil {
		fmt.Printf("UPGRADEFAILED pid=%d err=%q\n", pid, err)
		werr := table.Set("after", 1)
		fmt.Printf("REWRITE pid=%d owner=%v ok=%v err=%q\n", pid, table.Owner(), werr == nil, fmt.Sprint(werr))
		return 0
	}
	werr := table.Set("late", 1)
	fmt.Printf("UPGRADED pid=%d child=%d owner=%v write_notowner=%v\n", pid, child, table.Owner(), errors.Is(werr, memtable.ErrNotOwner))
	bufio.NewReader(os.Stdin).ReadString('\n')
	v, ok, err := table.Get("child")
	fmt.Printf("PARENTSEES pid=%d child=%d found=%v err=%v\n", pid, v, ok, err)
	return 0
}

// sum is a checksum of the table's entries.
func sum(t *memtable.Table) string {
	m, err := t.Snapshot()
	if err != nil {
		return "err:" + err.Error()
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%d\n", k, m[k])
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}

// badParentMain passes a file of the wrong kind under the table's name
// (MEMTEST_BAD, see wrongKindFile), with metadata that claims a
// handed-over table (but for notover), and upgrades to a holder that
// opens the table (see proctest.PassAndUpgrade).
func badParentMain() int {
	upg, err := tableflip.New(tableflip.Options{
		KillGrace: 2 * time.Second,
		Next: func(ctx context.Context, def *exec.Cmd) error {
			def.Env = append(def.Env, "TFTEST_ROLE=holder", "MEMTEST_CHILD=good")
			return nil
		},
	})
	if err != nil {
		return proctest.Fatal("new", err)
	}
	defer upg.Stop()
	bad := os.Getenv("MEMTEST_BAD")
	f, err := wrongKindFile(bad)
	if err != nil {
		return proctest.Fatal("wrong kind", err)
	}
	defer f.Close()
	// The metadata layout: version 1, handed over (1 or 0), the number
	// of slots (uint64, little endian), the SHA-256 of the memory.
	meta := binary.LittleEndian.AppendUint64([]byte{1, 1}, 256)
	if bad == "notover" {
		meta[1] = 0
	}
	meta = append(meta, make([]byte, 32)...)
	return proctest.PassAndUpgrade(upg, memtable.Scheme, tableName, f, meta)
}

// wrongKindFile opens what is passed under the table's name:
//
//	pipe      a pipe
//	udp       a UDP socket
//	unsealed  a memfd without seals
//	notover   a real memfd (its metadata says it was not handed over)
func wrongKindFile(kind string) (proctest.Conn, error) {
	switch kind {
	case "pipe":
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		w.Close()
		return r, nil
	case "udp":
		return net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	case "unsealed", "notover":
		fd, err := unix.MemfdCreate("bad", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), "bad")
		unix.Ftruncate(fd, 64+256*64)
		if kind == "notover" {
			unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW)
		}
		return f, nil
	}
	return nil, fmt.Errorf("unknown MEMTEST_BAD %q", kind)
}
