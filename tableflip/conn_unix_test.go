//go:build linux

package tableflip

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A frame cut short (its write timed out after part of it went out) ends
// the stream: a later frame, a fail frame say, would be misread by the
// peer as the rest of the first.
func TestWriteAfterCutFrameFails(t *testing.T) {
	t.Parallel()
	pc, childEnd, err := socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	defer childEnd.Close() // nobody reads: the socket buffer fills

	// 1 MiB does not fit in a socket buffer: the write blocks part way.
	written := make(chan error, 1)
	go func() { written <- pc.writeFrame(frameState, make([]byte, maxFramePayload), nil) }()
	rc, err := childEnd.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	queued := 0
	for deadline := time.Now().Add(time.Minute); queued == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the frame's first bytes never arrived")
		}
		rc.Control(func(fd uintptr) { queued, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		if queued == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	pc.c.SetWriteDeadline(time.Unix(1, 0)) // cut it
	if err := <-written; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the interrupted write: %v, want a timeout", err)
	}
	// Without the cut, this write would time out too, on its own frame.
	pc.c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	err = pc.writeFrame(frameFail, []byte("why"), nil)
	if err == nil || !strings.Contains(err.Error(), "send frame 'S'") {
		t.Fatalf("a frame after the cut one: %v, want the cut frame's error", err)
	}
}
