package inherit_test

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/tableflip-go/tableflip/internal/inherit"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fds is an fd store whose Inherit returns file (or err), and which
// records what OrCreate passes and forgets. The transports' tests show the
// flow with real upgrades; this one shows each branch of it.
type fds struct {
	*tablefliptest.Upgrader
	file      *os.File
	err       error
	passErr   error
	passed    syscall.Conn
	forgotten bool
}

func (s *fds) Inherit(transport, key string) (*os.File, []byte, error) {
	if s.file == nil {
		return nil, nil, s.err
	}
	return s.file, nil, nil
}

func (s *fds) Pass(transport, key string, c syscall.Conn, meta []byte) error {
	s.passed = c
	return s.passErr
}

func (s *fds) Forget(transport, key string) { s.forgotten = true }

func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestOrCreate(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name             string
		inherited        bool
		inheritErr       error
		fromFileErr      error
		createErr        error
		passErr          error
		wantErr          string // empty: no error
		wantFromFile     bool
		wantCreate       bool
		wantPassed       bool
		wantForgotten    bool
		wantResultClosed bool
	}{
		{name: "inherited", inherited: true, wantFromFile: true},
		{name: "inherited, refused", inherited: true, fromFileErr: boom, wantErr: "pkg: inherited tr k: boom", wantFromFile: true, wantForgotten: true},
		{name: "created", inheritErr: tableflip.ErrNotInherited, wantCreate: true, wantPassed: true},
		{name: "create fails", inheritErr: tableflip.ErrNotInherited, createErr: boom, wantErr: "pkg: boom", wantCreate: true},
		{name: "pass fails", inheritErr: tableflip.ErrNotInherited, passErr: boom, wantErr: "pkg: tr k: boom", wantCreate: true, wantPassed: true, wantResultClosed: true},
		{name: "inherit fails", inheritErr: boom, wantErr: "pkg: tr k: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &fds{Upgrader: tablefliptest.New(nil), err: tc.inheritErr, passErr: tc.passErr}
			defer s.Stop()
			if tc.inherited {
				s.file = devNull(t)
			}
			result := devNull(t)
			var calledFromFile, calledCreate bool
			c, err := inherit.OrCreate(s, "pkg", "tr", "k", func(f *os.File) (*os.File, error) {
				calledFromFile = true
				if f != s.file {
					t.Errorf("fromFile got %v, want the inherited file", f)
				}
				if tc.fromFileErr != nil {
					return nil, tc.fromFileErr
				}
				return result, nil
			}, func() (*os.File, error) {
				calledCreate = true
				if tc.createErr != nil {
					return nil, tc.createErr
				}
				return result, nil
			})
			if tc.wantErr == "" {
				if err != nil || c != result {
					t.Fatalf("got %v, %v; want the converted or created file", c, err)
				}
			} else if err == nil || err.Error() != tc.wantErr || !errors.Is(err, boom) || c != nil {
				t.Fatalf("got %v, %v; want nil and an error %q wrapping boom", c, err, tc.wantErr)
			}
			if calledFromFile != tc.wantFromFile || calledCreate != tc.wantCreate {
				t.Errorf("fromFile called %v, create %v; want %v, %v", calledFromFile, calledCreate, tc.wantFromFile, tc.wantCreate)
			}
			if (s.passed == result) != tc.wantPassed {
				t.Errorf("passed %v, want %v", s.passed != nil, tc.wantPassed)
			}
			if s.forgotten != tc.wantForgotten {
				t.Errorf("forgotten %v, want %v", s.forgotten, tc.wantForgotten)
			}
			if tc.inherited {
				if err := s.file.Close(); !errors.Is(err, os.ErrClosed) {
					t.Errorf("the inherited file is still open (Close: %v)", err)
				}
			}
			if err := result.Close(); errors.Is(err, os.ErrClosed) != tc.wantResultClosed {
				t.Errorf("the created socket closed: %v, want %v", errors.Is(err, os.ErrClosed), tc.wantResultClosed)
			}
		})
	}
}
