//go:build unix

package tableflip

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
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

	pc.c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	big := make([]byte, maxFramePayload)
	err = pc.writeFrame(frameState, big, nil)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a 1 MiB frame nobody reads: %v, want a timeout", err)
	}
	// Without the cut, this write would time out too, on its own frame.
	pc.c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	err2 := pc.writeFrame(frameFail, []byte("why"), nil)
	if err2 == nil || !strings.Contains(err2.Error(), "send frame 'S'") {
		t.Fatalf("a frame after the cut one: %v, want the cut frame's error", err2)
	}
}
