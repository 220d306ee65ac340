package tableflip

import (
	"context"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Fds is the part of an Upgrader that transports use: claiming the files a
// parent passed, passing files on to the next generation, and taking part in
// upgrades. *Upgrader implements it (tablefliptest.New makes one that never
// upgrades).
type Fds interface {
	// Inherit claims the file the parent passed under transport and key and
	// returns a duplicate of it that the caller owns, with the metadata the
	// parent attached. The upgrader keeps its own copy and passes it on to
	// the next generation under the same name (companion files excepted,
	// see Handoff.AddFile). It returns an error wrapping ErrNotInherited
	// when there is no such file. A transport that rejects the file it got
	// (the wrong kind of socket for the key) must call Forget, so that the
	// file is not passed on either.
	Inherit(transport, key string) (f *os.File, meta []byte, err error)
	// Pass hands c's file descriptor to every later generation under
	// transport and key. The upgrader keeps a duplicate; the caller keeps c.
	Pass(transport, key string, c syscall.Conn, meta []byte) error
	// Inherited lists, sorted, the keys of the files the parent passed
	// under transport that nobody has claimed yet: for a transport whose
	// keys the child cannot know in advance (the companion files of an
	// upgrade).
	Inherited(transport string) []string
	// Forget stops passing the file under transport and key and closes the
	// upgrader's copy. It is a no-op for an unknown name.
	Forget(transport, key string)
	// AddHooks registers hooks that take part in upgrades and in the final
	// stop. The returned function removes them.
	AddHooks(h Hooks) (remove func())
	// Generation is 1 for a process started without a parent, and one more
	// than its parent's for a child.
	Generation() int
	// Logger is the upgrader's logger (a no-op logger by default).
	Logger() *zap.Logger
}

// Hooks let a transport (or systemd integration, or an application) take
// part in an upgrade. Every field is optional. Hooks run on the upgrader's
// own goroutines (Prepare on the one that runs the upgrade, the others on
// the one that owns the lifecycle), in the order they were added; they must
// not call back into the Upgrader's lifecycle methods.
type Hooks struct {
	// Ready runs when this generation becomes ready (after its parent, if
	// any, has acknowledged the child's answer).
	Ready func()
	// Prepare runs in the old generation when an upgrade starts, before
	// the child process is started. It may add files and metadata for the
	// child to h. An error aborts the upgrade.
	Prepare func(ctx context.Context, h *Handoff) error
	// Done runs when an upgrade has ended: err is nil and pid is the new
	// generation's when it became ready.
	Done func(pid int, err error)
	// FinalStop runs when Stop is called on a generation that has no
	// successor: the service is stopping for good.
	FinalStop func()
	// Resumed runs when this generation takes the service back from a
	// successor that died after the handover (see Upgrader.Resumed).
	// err is a *ChildError with the successor's pid and exit status.
	Resumed func(err error)
}

// Handoff is one upgrade in progress, as seen by Hooks.Prepare.
type Handoff struct {
	generation int
	extra      []*entry
	meta       map[string][]byte
}

// Generation is the generation number the child will have.
func (h *Handoff) Generation() int { return h.generation }

// AddFile passes c's file descriptor to the child in this upgrade only
// (a companion file such as one end of a forwarding socketpair). The handoff
// keeps a duplicate that it closes when the upgrade has ended. The child
// claims it with Inherit like any other file, but does not pass it on: each
// upgrade makes its own companions.
func (h *Handoff) AddFile(transport, key string, c syscall.Conn, meta []byte) error {
	fd, err := dupConn(c, transport+":"+key)
	if err != nil {
		return err
	}
	h.extra = append(h.extra, &entry{transport: transport, key: key, fd: fd, meta: meta, companion: true})
	return nil
}

// SetMeta replaces, for this upgrade only, the metadata sent with the file
// passed under transport and key (for example fresh session-ticket keys).
func (h *Handoff) SetMeta(transport, key string, meta []byte) {
	if h.meta == nil {
		h.meta = make(map[string][]byte)
	}
	h.meta[entryName(transport, key)] = meta
}

// Options configure an Upgrader. The zero value is usable.
type Options struct {
	// UpgradeTimeout bounds an upgrade from starting the child until it
	// is ready. In a child it bounds the same handoff from its side, from
	// New until the parent acknowledges Ready, so that a parent that stalls
	// cannot hang it. Zero means one minute.
	UpgradeTimeout time.Duration
	// KillGrace is how long a child that failed gets to exit by itself,
	// and then again between SIGTERM and SIGKILL. Zero means five seconds.
	KillGrace time.Duration
	// PIDFile, if set, is written atomically with this process's pid when
	// it becomes ready, and removed on the final stop. While any generation
	// runs, it holds a lock on PIDFile+".lock", passed from generation to
	// generation; New fails with ErrPIDFileLocked while another instance
	// holds it. The lock file goes at the final stop.
	PIDFile string
	// Logger receives one structured line per lifecycle event. Nil means
	// no logging.
	Logger *zap.Logger
	// SaveState, if set, is called in the old generation at upgrade time
	// and writes the application's state to w. The bytes are streamed to
	// the new generation, which reads them from LoadState before Ready.
	SaveState func(ctx context.Context, w io.Writer) error
	// Next, if set, may change the command that starts the next
	// generation before it starts. cmd comes set to the default: Path is
	// the current executable's path resolved anew (so that a binary
	// replaced on disk deploys), Args are this process's, Env is its
	// environment without the variables of its own start (the handoff,
	// systemd's LISTEN_*), and Stdin, Stdout and Stderr are its own. Next
	// may change any field (a nil Env means this process's environment),
	// and may add ExtraFiles: the upgrader appends the handoff socket
	// after them. An error aborts the upgrade.
	Next func(ctx context.Context, cmd *exec.Cmd) error
	// DisableNotify turns the sd_notify integration off (it is on
	// whenever systemd sets NOTIFY_SOCKET), for a program that speaks to
	// the service manager itself and must not have tableflip move MAINPID.
	DisableNotify bool
}
