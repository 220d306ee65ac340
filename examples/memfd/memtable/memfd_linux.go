package memtable

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const supported = true

// createMemfd makes a memfd of size bytes, sealed against shrinking and
// growing (a mapping of a file that shrinks faults), and maps it.
func createMemfd(name string, size int) (*os.File, []byte, error) {
	fd, err := unix.MemfdCreate("memtable:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("size the memfd: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("seal the memfd: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("map the memfd: %w", err)
	}
	return f, mem, nil
}

// mapMemfd maps an inherited file after checking that it is what a table
// lives in: a memfd sealed against resizing.
func mapMemfd(f *os.File) ([]byte, error) {
	fd := int(f.Fd())
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("the file is not a memfd: %w", describe(fd, err))
	}
	if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW; seals&want != want {
		return nil, fmt.Errorf("the memfd is not sealed against resizing (seals %#x): not a table's", seals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Size < headerSize || st.Size > int64(regionSize(MaxSlots)) {
		return nil, fmt.Errorf("the memfd has %d bytes: not a table's", st.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the memfd: %w", err)
	}
	return mem, nil
}

// describe adds what the file is to err, from its /proc link.
func describe(fd int, err error) error {
	link, lerr := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if lerr != nil {
		return err
	}
	return fmt.Errorf("%s: %w", link, err)
}

func unmap(mem []byte) error { return unix.Munmap(mem) }

func inodeOf(f *os.File) uint64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
