package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// RequestUpgrade asks the service listening on the control socket at path
// to upgrade, and waits for the result: the new generation's pid, or an
// *UpgradeError that carries the new generation's own reason. A request
// that arrives while an upgrade is in progress waits for that upgrade and
// gets its result; it does not start another.
//
// from, if not zero, is the pid of the generation to upgrade from (what
// systemd passes ExecReload= as $MAINPID). If that generation has already
// been upgraded, the request returns the generation it upgraded to,
// without a second upgrade.
func RequestUpgrade(ctx context.Context, path string, from int) (pid int, err error) {
	r, _, err := roundTrip(ctx, path, request{Op: "upgrade", From: from})
	if err != nil {
		return 0, err
	}
	return r.Pid, r.err()
}

// RequestStatus returns the serving generation and the older ones still
// draining.
func RequestStatus(ctx context.Context, path string) (Status, error) {
	r, _, err := roundTrip(ctx, path, request{Op: "status"})
	if err != nil {
		return Status{}, err
	}
	if err := r.err(); err != nil {
		return Status{}, err
	}
	if r.Status == nil {
		return Status{}, fmt.Errorf("%w: status missing from the answer", ErrBadRequest)
	}
	return *r.Status, nil
}

// RequestStop stops the service (its serving generation drains and exits)
// and waits until every generation has exited, the older ones still
// draining included. It returns the generations it waited for.
func RequestStop(ctx context.Context, path string) ([]Generation, error) {
	for {
		r, fds, err := roundTrip(ctx, path, request{Op: "stop"})
		if err != nil {
			return nil, err
		}
		if !r.OK && r.Kind == "retry" {
			// An old generation that had just handed over answered; the new
			// one answers the next connection.
			closeAll(fds)
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if err := r.err(); err != nil {
			closeAll(fds)
			return nil, err
		}
		defer closeAll(fds)
		if len(fds) != len(r.Exiting) {
			return nil, fmt.Errorf("%w: %d pidfds for %d generations", ErrBadRequest, len(fds), len(r.Exiting))
		}
		return r.Exiting, waitExited(ctx, fds, r.Exiting)
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// waitExited waits until every pidfd is readable: its process has exited.
func waitExited(ctx context.Context, fds []int, gens []Generation) error {
	left := make(map[int]Generation, len(fds))
	for i, fd := range fds {
		left[fd] = gens[i]
	}
	for len(left) > 0 {
		timeout := -1
		if d, ok := ctx.Deadline(); ok {
			timeout = int(time.Until(d).Milliseconds()) + 1
			if timeout <= 0 {
				return waitError(ctx, left)
			}
		}
		p := make([]unix.PollFd, 0, len(left))
		for fd := range left {
			p = append(p, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
		n, err := unix.Poll(p, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("control: poll pidfds: %w", err)
		}
		if n == 0 {
			return waitError(ctx, left)
		}
		for _, q := range p {
			if q.Revents != 0 {
				delete(left, int(q.Fd))
			}
		}
	}
	return nil
}

func waitError(ctx context.Context, left map[int]Generation) error {
	var pids []int
	for _, g := range left {
		pids = append(pids, g.Pid)
	}
	err := ctx.Err()
	if err == nil {
		err = context.DeadlineExceeded
	}
	return fmt.Errorf("control: pids %v still running: %w", pids, err)
}

func roundTrip(ctx context.Context, path string, req request) (*response, []int, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("control: connect to %s: %w", path, err)
	}
	uc := c.(*net.UnixConn)
	defer uc.Close()
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := uc.Write(append(b, '\n')); err != nil {
		// A service that refuses the caller answers before it reads the
		// request and closes: read why.
		if r, fds, rerr := readResponse(ctx, uc, path); rerr == nil {
			return r, fds, nil
		}
		return nil, nil, fmt.Errorf("control: send to %s: %w", path, err)
	}
	return readResponse(ctx, uc, path)
}

func readResponse(ctx context.Context, uc *net.UnixConn, path string) (*response, []int, error) {
	var (
		buf  []byte
		fds  []int
		data = make([]byte, 64<<10)
		oob  = make([]byte, unix.CmsgSpace(64*4))
	)
	for !bytes.Contains(buf, []byte{'\n'}) {
		n, oobn, _, _, err := uc.ReadMsgUnix(data, oob)
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				closeAll(fds)
				return nil, nil, perr
			}
		}
		buf = append(buf, data[:n]...)
		if err != nil {
			closeAll(fds)
			if ctx.Err() != nil {
				return nil, nil, fmt.Errorf("control: waiting for %s: %w", path, ctx.Err())
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = context.DeadlineExceeded
			}
			return nil, nil, fmt.Errorf("control: read the answer from %s: %w", path, err)
		}
	}
	var r response
	if err := json.Unmarshal(buf[:bytes.IndexByte(buf, '\n')], &r); err != nil {
		closeAll(fds)
		return nil, nil, fmt.Errorf("%w: the answer: %v", ErrBadRequest, err)
	}
	return &r, fds, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control: control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range got {
			unix.CloseOnExec(fd)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}
