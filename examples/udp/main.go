// Command udp is a UDP echo server that upgrades itself without leaving a
// request unanswered: send it SIGHUP and the next generation (the binary on
// disk now) shares the socket, while this one stops reading, answers every
// datagram it has read, and exits. SIGTERM stops it.
//
//	go build -o udp-echo ./examples/udp
//	./udp-echo -addr 127.0.0.1:5353 -pidfile udp-echo.pid &
//	echo -n hello | nc -u -w1 127.0.0.1 5353   # pid=4242 hello
//	kill -HUP $(cat udp-echo.pid)
//	echo -n hello | nc -u -w1 127.0.0.1 5353   # pid=4250 hello
//	kill -TERM $(cat udp-echo.pid)
//
// Its flags and its answer are a stable contract: -addr, -pidfile, and
// every datagram answered with "pid=<pid> " (one space) followed by the
// datagram's own bytes, so that a client can match answers to requests.
// When it serves, each generation prints one line on stdout:
//
//	ready pid=<pid> generation=<n> addr=<host:port>
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/internal/example"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/udp"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

// run is the program; it returns the exit status.
func run(args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("udp", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:5353", "serve UDP on this `host:port` (port 0: any free port, kept across upgrades)")
	pidFile := fs.String("pidfile", "", "keep the serving process's pid in this `file`")
	logFormat := example.LogFlag(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return example.Run("udp", *logFormat, func(log *zap.Logger) error {
		return serve(log, stdout, *addr, *pidFile)
	})
}

func serve(log *zap.Logger, stdout io.Writer, addr, pidFile string) error {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log})
	if err != nil {
		return err
	}
	defer upg.Stop()

	// The socket is inherited from the previous generation, or created.
	conn, err := udp.ListenPacket(context.Background(), upg, "udp", addr)
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	defer conn.Close()

	prefix := []byte("pid=" + strconv.Itoa(os.Getpid()) + " ")
	srv := &udp.Server{Handler: func(c *net.UDPConn, p []byte, from netip.AddrPort) {
		answer := append(append(make([]byte, 0, len(prefix)+len(p)), prefix...), p...)
		if _, err := c.WriteToUDPAddrPort(answer, from); err != nil {
			log.Warn("answer", zap.Stringer("to", from), zap.Error(err))
		}
	}}

	// SIGHUP upgrades, SIGTERM stops. Catch them before anything can
	// learn our pid (the pid file is written by Ready): a SIGHUP with no
	// handler would kill the process.
	stopSignals := example.HandleSignals(log, upg)
	defer stopSignals()

	// Commit: the previous generation drains and exits.
	if err := upg.Ready(); err != nil {
		return err
	}
	// Serve only now that this generation is the one: until Ready, the
	// socket's backlog holds new connections (or datagrams) for whichever
	// generation serves next, so a failing Ready loses none of them.
	served := make(chan error, 1)
	go func() { served <- srv.Serve(conn) }()
	fmt.Fprintf(stdout, "ready pid=%d generation=%d addr=%s\n", os.Getpid(), upg.Generation(), conn.LocalAddr())

	select {
	case <-upg.Exit(): // the next generation is ready, or SIGTERM
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}

	// Stop reading; answer every datagram already read. The next
	// generation reads the rest from the same socket.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Drain(ctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, udp.ErrDrained) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("drained", zap.Duration("duration", time.Since(start)))
	return nil
}
