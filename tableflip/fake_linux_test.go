package tableflip_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// The handoff protocol spoken by hand, as docs/protocol.md specifies it, to
// play a parent or child that is broken, lying or of another version.

func rawFrame(typ byte, nfds int, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(nfds))
	return append(b, payload...)
}

func rawHello(version uint16, pid, gen int) []byte {
	p := []byte("TFLIP")
	p = binary.BigEndian.AppendUint16(p, version)
	p = binary.BigEndian.AppendUint32(p, uint32(pid))
	p = binary.BigEndian.AppendUint32(p, uint32(gen))
	return rawFrame('H', 0, p)
}

// rawRecord describes one file of a files frame, without metadata.
func rawRecord(transport, key string) []byte {
	b := append([]byte{0, byte(len(transport))}, transport...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	return binary.BigEndian.AppendUint32(b, 0)
}

func readRawFrame(r io.Reader) (typ byte, payload []byte, err error) {
	var hdr [7]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, binary.BigEndian.Uint32(hdr[:4]))
	_, err = io.ReadFull(r, payload)
	return hdr[4], payload, err
}

// fakeChildMain is a child that breaks the protocol the way TFTEST_FAKE
// says, and prints what the parent answered.
func fakeChildMain() int {
	// Live to print what the parent said: it sends SIGTERM right after.
	signal.Ignore(syscall.SIGTERM)
	f := os.NewFile(3, "handoff")
	switch os.Getenv("TFTEST_FAKE") {
	case "v99":
		f.Write(rawHello(99, os.Getpid(), 1))
	case "garbage":
		f.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	case "ready-first":
		f.Write(rawFrame('R', 0, nil))
	case "files":
		// 250 files (copies of stdin) where the parent expects a hello.
		fds := make([]int, 250)
		unix.Sendmsg(3, rawFrame('F', len(fds), nil), unix.UnixRights(fds...), nil, 0)
	case "hello-last":
		// Everything the parent sends, up to its end frame, before this
		// child says hello: a parent that waited for the hello first
		// would wait until its timeout.
		var seen []byte
		for {
			typ, _, err := readRawFrame(f)
			if err != nil {
				fmt.Printf("FAKECHILD pid=%d err=%v seen=%s\n", os.Getpid(), err, seen)
				return 1
			}
			seen = append(seen, typ)
			if typ == 'E' {
				break
			}
		}
		f.Write(rawHello(1, os.Getpid(), 1))
		f.Write(rawFrame('X', 0, []byte("got "+string(seen)+" before my hello")))
		return 0
	case "wait":
		// A correct child until the parent's end frame; then it waits
		// for the parent's next word.
		f.Write(rawHello(1, os.Getpid(), 1))
		for {
			typ, _, err := readRawFrame(f)
			if err != nil || typ == 'E' {
				break
			}
		}
		fmt.Printf("FAKEWAIT pid=%d\n", os.Getpid())
	}
	typ, payload, err := readRawFrame(f)
	for err == nil && typ != 'X' {
		typ, payload, err = readRawFrame(f)
	}
	fmt.Printf("FAKECHILD pid=%d typ=%c err=%v reason=%q\n", os.Getpid(), typ, err, payload)
	return 0
}
