// Command anchor is the comparison server of the benchmarks: the same
// services as examples/http, examples/tls and examples/udp (the same flags,
// the same answers), built on cloudflare/tableflip v1.2.3 the way its
// README and its http.Server.Shutdown example show: tableflip.New,
// upg.Listen, upg.Ready, <-upg.Exit(), then server.Shutdown.
//
// With -plain it uses no upgrade library at all: it listens itself, and a
// restart is SIGTERM (Shutdown, exit) followed by a new start, which is what
// a service without either library gets.
//
//	anchor -mode http -addr 127.0.0.1:8080 -pidfile a.pid
//	anchor -mode http -socket /run/a.sock -pidfile a.pid
//	anchor -mode tls  -addr 127.0.0.1:8443 -cert c.pem -key k.pem -pidfile a.pid
//	anchor -mode udp  -addr 127.0.0.1:5353 -pidfile a.pid
//	anchor -mode quic -addr 127.0.0.1:4433 -cert c.pem -key k.pem -pidfile a.pid
//	anchor -plain ...  (no SIGHUP upgrade: restart it)
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/quic-go/quic-go"
)

func main() {
	mode := flag.String("mode", "http", "http, tls, udp or quic")
	addr := flag.String("addr", "127.0.0.1:8080", "TCP or UDP `host:port`")
	socket := flag.String("socket", "", "serve HTTP on this unix socket `path` instead of -addr")
	pidFile := flag.String("pidfile", "", "pid `file`")
	certFile := flag.String("cert", "", "PEM certificate (-mode tls)")
	keyFile := flag.String("key", "", "PEM key (-mode tls)")
	plain := flag.Bool("plain", false, "no upgrades: listen directly; restart by SIGTERM and a new start")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("anchor %d ", os.Getpid()))

	var l listener
	if *plain {
		l = newPlain(*pidFile)
	} else {
		upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile})
		if err != nil {
			log.Fatal(err)
		}
		defer upg.Stop()
		l = upg
	}
	var err error
	switch *mode {
	case "udp":
		err = serveUDP(l, *addr)
	case "quic":
		err = serveQUIC(l, *addr, *certFile, *keyFile)
	default:
		err = serveHTTP(l, *mode, *addr, *socket, *certFile, *keyFile)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// listener is what the servers need from cloudflare/tableflip's Upgrader,
// so that -plain can stand in for it.
type listener interface {
	Listen(network, addr string) (net.Listener, error)
	ListenPacket(network, addr string) (net.PacketConn, error)
	Ready() error
	Exit() <-chan struct{}
	Stop()
	Upgrade() error
}

// handleSignals: SIGHUP upgrades, SIGTERM stops, as in the README.
func handleSignals(l listener) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	go func() {
		for s := range sig {
			if s != syscall.SIGHUP {
				l.Stop()
				continue
			}
			if err := l.Upgrade(); err != nil {
				log.Println("Upgrade failed:", err)
			}
		}
	}()
}

// readyUntilExit handles the signals, calls Ready, and waits for Exit: the
// next generation is ready, or SIGTERM came.
func readyUntilExit(l listener) error {
	handleSignals(l)
	if err := l.Ready(); err != nil {
		return err
	}
	<-l.Exit()
	return nil
}

func serveHTTP(l listener, mode, addr, socket, certFile, keyFile string) error {
	var ln net.Listener
	var err error
	if socket != "" {
		ln, err = l.Listen("unix", socket)
	} else {
		ln, err = l.Listen("tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("can't listen: %w", err)
	}
	defer ln.Close()
	if mode == "tls" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		// Each process has its own session-ticket keys (crypto/tls picks
		// them at random): cloudflare/tableflip passes none on.
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	pid := os.Getpid()
	server := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid=%d\n", pid)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := server.Serve(ln); err != http.ErrServerClosed {
			log.Println("HTTP server:", err)
		}
	}()
	if err := readyUntilExit(l); err != nil {
		return err
	}
	time.AfterFunc(30*time.Second, func() {
		log.Println("Graceful shutdown timed out")
		os.Exit(1)
	})
	return server.Shutdown(context.Background())
}

func serveUDP(l listener, addr string) error {
	conn, err := l.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("can't listen: %w", err)
	}
	prefix := []byte("pid=" + strconv.Itoa(os.Getpid()) + " ")
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return // closed after Exit
			}
			answer := append(append(make([]byte, 0, len(prefix)+n), prefix...), buf[:n]...)
			conn.WriteTo(answer, from)
		}
	})
	if err := readyUntilExit(l); err != nil {
		return err
	}
	conn.Close()
	wg.Wait()
	return nil
}

// plain listens without an upgrade library.
type plain struct {
	pidFile string
	exit    chan struct{}
	once    sync.Once
}

func newPlain(pidFile string) *plain { return &plain{pidFile: pidFile, exit: make(chan struct{})} }

func (p *plain) Listen(network, addr string) (net.Listener, error) {
	if network == "unix" {
		os.Remove(addr) // the previous run's socket file
	}
	return net.Listen(network, addr)
}

func (p *plain) ListenPacket(network, addr string) (net.PacketConn, error) {
	return net.ListenPacket(network, addr)
}

func (p *plain) Ready() error {
	if p.pidFile == "" {
		return nil
	}
	tmp := p.pidFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p.pidFile)
}

func (p *plain) Exit() <-chan struct{} { return p.exit }
func (p *plain) Stop()                 { p.once.Do(func() { close(p.exit) }) }
func (p *plain) Upgrade() error        { return errors.New("plain: no upgrades, restart instead") }

// serveQUIC is examples/quic's "echo" protocol on cloudflare/tableflip: the
// UDP socket, inherited with upg.ListenPacket, under a quic-go Transport.
// The socket is shared, not steered: once the next generation reads it,
// datagrams of this generation's connections can go to either process, so
// at Exit this one closes its connections (CONNECTION_CLOSE, the clients
// learn at once) and its transport.
func serveQUIC(l listener, addr, certFile, keyFile string) error {
	pc, err := l.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("can't listen: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"echo"}},
		&quic.Config{MaxIdleTimeout: 60 * time.Second})
	if err != nil {
		return err
	}
	answer := []byte("pid=" + strconv.Itoa(os.Getpid()))
	var mu sync.Mutex
	conns := map[*quic.Conn]struct{}{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				echo(c, answer)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	if err := readyUntilExit(l); err != nil {
		return err
	}
	ln.Close()
	mu.Lock()
	for c := range conns {
		c.CloseWithError(0, "shutting down")
	}
	mu.Unlock()
	wg.Wait()
	tr.Close()
	pc.Close()
	return nil
}

// echo answers each bidirectional stream of c with answer once the client
// has closed its side, as examples/quic does.
func echo(c *quic.Conn, answer []byte) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		wg.Go(func() {
			if _, err := io.Copy(io.Discard, s); err != nil {
				s.CancelWrite(1)
				return
			}
			s.Write(answer)
			s.Close()
		})
	}
}
