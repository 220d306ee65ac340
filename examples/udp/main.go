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

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
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
	logFormat := fs.String("log", "console", "log to stderr as `console`, json, or off")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(*logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udp:", err)
		return 2
	}
	defer log.Sync()
	if err := serve(log, stdout, *addr, *pidFile); err != nil {
		log.Error("exit", zap.Error(err))
		return 1
	}
	return 0
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

	// drain.Run handles SIGHUP (upgrade) and SIGTERM (stop), calls Ready,
	// and only then reads the socket: until this generation is ready,
	// datagrams wait in the socket for whichever generation serves. Once
	// the next generation is ready, or SIGTERM came, this one stops
	// reading and answers every datagram it has read; the next generation
	// reads the rest from the same socket.
	serveUDP := func() error {
		fmt.Fprintf(stdout, "ready pid=%d generation=%d addr=%s\n", os.Getpid(), upg.Generation(), conn.LocalAddr())
		if err := srv.Serve(conn); !errors.Is(err, udp.ErrDrained) {
			return err
		}
		return nil
	}
	return drain.Run(upg, serveUDP, srv.Drain, drain.RunOptions{Logger: log})
}

// newLogger returns zap's production logger in the encoding -log asks
// for, without stack traces (errors tell their own story), or one that
// logs nothing.
func newLogger(format string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.DisableStacktrace = true
	switch format {
	case "json":
	case "console":
		cfg.Encoding = "console"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "off":
		return zap.NewNop(), nil
	default:
		return nil, errors.New("-log must be console, json or off")
	}
	return cfg.Build()
}
