package tlstransport_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
	tlstransport "github.com/tableflip-go/tableflip/transport/tls"
)

var roles = map[string]func() int{
	"server":    serverMain,
	"badparent": badParentMain,
}

const serverAddr = "127.0.0.1:0"

// serverMain is the program the tests upgrade. TLSTEST_MODE says how it
// listens on serverAddr:
//
//	tls     tlstransport.Listen
//	uri     tableflip.Listen(ctx, upg, "tls://...") with SetDefaultConfig
//	tcp     plain HTTP on tcp.Listen
//	stdtls  crypto/tls's own listener over tcp.Listen, the way services
//	        do it with cloudflare/tableflip: its ticket keys die with the
//	        generation
//
// It serves GET / (pid=<pid> gen=<generation>) and GET /upgrade?mode=M
// (upgrade to a generation in mode M), and prints READY, LISTENERR and
// EXIT lines. TLSTEST_SHIFT moves the ticket clock of generation g by
// (g-1) times the shift, so that tests can see keys rotate and expire
// across generations without waiting hours.
func serverMain() int {
	pid := os.Getpid()
	mode := os.Getenv("TLSTEST_MODE")
	var next struct {
		sync.Mutex
		mode string
	}
	upg, err := tableflip.New(tableflip.Options{
		KillGrace: 2 * time.Second,
		Next: func(ctx context.Context, def *exec.Cmd) error {
			next.Lock()
			defer next.Unlock()
			def.Env = append(def.Env, "TLSTEST_MODE="+next.mode)
			return nil
		},
	})
	if err != nil {
		return proctest.Fatal("new", err)
	}
	defer upg.Stop()

	shift, _ := time.ParseDuration(os.Getenv("TLSTEST_SHIFT"))
	offset := time.Duration(upg.Generation()-1) * shift
	rotation, _ := time.ParseDuration(os.Getenv("TLSTEST_ROTATION"))
	lifetime, _ := time.ParseDuration(os.Getenv("TLSTEST_LIFETIME"))
	cfg := &tlstransport.Config{
		CertFile: os.Getenv("TLSTEST_CERT"),
		KeyFile:  os.Getenv("TLSTEST_KEY"),
		Tickets: tlstransport.TicketOptions{
			Rotation: rotation,
			Lifetime: lifetime,
			Now:      func() time.Time { return time.Now().Add(offset) },
		},
	}

	ctx := context.Background()
	before := proctest.OpenFds()
	var ln net.Listener
	switch mode {
	case "tls":
		ln, err = tlstransport.Listen(ctx, upg, "tcp", serverAddr, cfg)
	case "uri":
		tlstransport.SetDefaultConfig(cfg)
		ln, err = tableflip.Listen(ctx, upg, "tls://"+serverAddr)
	case "tcp":
		ln, err = tcp.Listen(ctx, upg, "tcp", serverAddr)
	case "stdtls":
		var cert tls.Certificate
		if cert, err = tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile); err == nil {
			var raw net.Listener
			if raw, err = tcp.Listen(ctx, upg, "tcp", serverAddr); err == nil {
				ln = tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}})
			}
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Printf("LISTENERR pid=%d gen=%d fds_before=%d fds_after=%d err=%q\n", pid, upg.Generation(), before, proctest.OpenFds(), err)
		upg.Fail(err)
		return 1
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d gen=%d\n", pid, upg.Generation())
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		next.Lock()
		next.mode = r.URL.Query().Get("mode")
		next.Unlock()
		child, err := upg.Upgrade(r.Context())
		if err != nil {
			fmt.Fprintf(w, "err %v\n", err)
			return
		}
		fmt.Fprintf(w, "ok child=%d\n", child)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)

	if err := upg.Ready(); err != nil {
		return proctest.Fatal("ready", err)
	}
	keys := "none"
	if tl, ok := ln.(*tlstransport.Listener); ok {
		var ids []string
		for _, k := range tl.TicketKeys() {
			ids = append(ids, k.ID)
		}
		keys = strings.Join(ids, ",")
	}
	fmt.Printf("READY pid=%d gen=%d mode=%s addr=%s keys=%s\n", pid, upg.Generation(), mode, ln.Addr(), keys)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	select {
	case <-upg.Exit():
	case <-sigs:
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	upg.Stop()
	fmt.Printf("EXIT pid=%d\n", pid)
	return 0
}

// badParentMain passes a file of the wrong kind under a name a TLS
// listener claims (TLSTEST_BAD), then upgrades to a server in tls mode and
// reports how the upgrade ended.
//
//	udp-as-tcp  a UDP socket where the TCP socket is expected
//	udp-as-tls  the right TCP socket, and a UDP socket where the
//	            session-ticket record is expected
func badParentMain() int {
	upg, err := tableflip.New(tableflip.Options{
		KillGrace: 2 * time.Second,
		Next: func(ctx context.Context, def *exec.Cmd) error {
			def.Env = append(def.Env, "TFTEST_ROLE=server", "TLSTEST_MODE=tls")
			return nil
		},
	})
	if err != nil {
		return proctest.Fatal("new", err)
	}
	defer upg.Stop()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return proctest.Fatal("udp", err)
	}
	defer udp.Close()
	switch bad := os.Getenv("TLSTEST_BAD"); bad {
	case "udp-as-tcp":
		return proctest.PassAndUpgrade(upg, "tcp", serverAddr, udp, nil)
	case "udp-as-tls":
		ln, err := tcp.Listen(context.Background(), upg, "tcp", serverAddr)
		if err != nil {
			return proctest.Fatal("listen", err)
		}
		defer ln.Close()
		// The key under which tlstransport passes a listener's
		// session-ticket keys: network "/" address.
		return proctest.PassAndUpgrade(upg, tlstransport.TransportName, "tcp/"+serverAddr, udp, []byte{1, 0, 0})
	default:
		return proctest.Fatal("pass", fmt.Errorf("unknown TLSTEST_BAD %q", bad))
	}
}
