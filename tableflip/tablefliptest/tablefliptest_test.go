package tablefliptest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNeverUpgrades(t *testing.T) {
	u := tablefliptest.New(nil)
	if u.HasParent() || u.Generation() != 1 {
		t.Fatal("the double has a parent")
	}
	// As the real one: not before Ready.
	if _, err := u.Upgrade(context.Background()); !errors.Is(err, tableflip.ErrNotReady) {
		t.Fatalf("Upgrade before Ready: %v", err)
	}
	if err := u.Ready(); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Upgrade(context.Background()); !errors.Is(err, tableflip.ErrNotSupported) {
		t.Fatalf("Upgrade: %v", err)
	}
	if err := u.Ready(); !errors.Is(err, tableflip.ErrAlreadyReady) {
		t.Fatalf("second Ready: %v", err)
	}
	finals := 0
	u.AddHooks(tableflip.Hooks{FinalStop: func() { finals++ }})
	u.Stop()
	u.Stop()
	if finals != 1 {
		t.Fatalf("FinalStop ran %d times", finals)
	}
	select {
	case <-u.Exit():
	default:
		t.Fatal("Exit not closed by Stop")
	}
	if err := u.Ready(); !errors.Is(err, tableflip.ErrStopped) {
		t.Fatalf("Ready after Stop: %v", err)
	}
}

// The transports run on the double unchanged: a listener is created fresh.
func TestTransportOnDouble(t *testing.T) {
	u := tablefliptest.New(nil)
	defer u.Stop()
	ln, err := tcp.Listen(context.Background(), u, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := tcp.Listen(context.Background(), u, "tcp", "127.0.0.1:0"); !errors.Is(err, tableflip.ErrDuplicate) {
		t.Fatalf("second listener under one key: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })}
	go srv.Serve(ln)
	defer srv.Close()
	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hi" {
		t.Fatalf("got %q", b)
	}
	http.DefaultClient.CloseIdleConnections()
}

// Code written for a *tableflip.Upgrader runs with the double in tests.
func Example() {
	upg := tablefliptest.New(nil)
	defer upg.Stop()
	ln, err := tcp.Listen(context.Background(), upg, "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	fmt.Println(upg.Ready())
	_, err = upg.Upgrade(context.Background())
	fmt.Println(errors.Is(err, tableflip.ErrNotSupported))
	// Output:
	// <nil>
	// true
}
