// Command grpc is a gRPC server that upgrades itself without failing an
// RPC: send it SIGHUP and the next generation (the binary on disk now)
// takes over the listening socket, then the old one stops with
// GracefulStop, which answers every RPC already under way. SIGTERM stops
// it the same way.
//
//	cd examples/grpc && go build -o grpc-example .
//	./grpc-example -addr 127.0.0.1:8443 -pidfile grpc.pid &
//	kill -HUP $(cat grpc.pid)   # upgrade
//	kill -TERM $(cat grpc.pid)  # stop
//
// Its flags are a stable contract: -addr, -pidfile, -drain (how long an
// old generation's GracefulStop may take before it is cut short with
// Stop; its "drained" log line then says forced=true) and -log.
//
// # The service
//
// The service is written by hand, without protoc: its messages are
// protobuf's well-known wrapper types, so any gRPC client speaks it with
// the standard protobuf codec. In proto3 it is:
//
//	syntax = "proto3";
//	package tableflip.example;
//	import "google/protobuf/wrappers.proto";
//	service Pid {
//	  // Get answers "pid=<pid> generation=<n> " followed by the request.
//	  rpc Get(google.protobuf.StringValue) returns (google.protobuf.StringValue);
//	  // Stream sends as many answers as asked (at most 10000), one every
//	  // -tick, each "pid=<pid> generation=<n> seq=<i>".
//	  rpc Stream(google.protobuf.UInt32Value) returns (stream google.protobuf.StringValue);
//	}
//
// # One rule
//
// A generation serves nothing before its upgrade is committed: the server
// is built and the listener inherited before Ready, but grpc.Server.Serve
// is called only once Ready has returned nil. Until then the connections
// the kernel accepts wait in the listening socket's backlog, and the old
// generation, which still serves, answers them if it accepts first.
//
// # Stopping without dropping a connection
//
// GracefulStop alone drops connections: one that the server's accept loop
// has just taken from the socket, but whose goroutine has not started yet
// when GracefulStop begins, is closed unanswered, and its client's RPC
// fails ("error reading server preface: connection reset by peer"). In
// one run of TestUpgradesUnderLoad without this, 2 of 22,000 RPCs failed
// so, both of clients that open a new connection per RPC. So a generation's drain first stops accepting (it closes its
// own copy of the listening socket, which stays open in the next
// generation, so the connections not yet accepted are the next
// generation's), waits until every connection it did accept is in the
// server's hands, and only then calls GracefulStop.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// The full names of the service's methods, for clients.
const (
	ServiceName  = "tableflip.example.Pid"
	GetMethod    = "/" + ServiceName + "/Get"
	StreamMethod = "/" + ServiceName + "/Stream"
)

// maxStream bounds the answers one Stream call asks for.
const maxStream = 10000

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is the program, given its arguments; it returns the exit status.
func run(args []string) int {
	fs := flag.NewFlagSet("grpc", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8443", "serve gRPC on this TCP `host:port`")
	pidFile := fs.String("pidfile", "", "keep the serving process's pid in this `file`")
	drain := fs.Duration("drain", 30*time.Second, "how long an old generation's GracefulStop may take before Stop cuts it short")
	tick := fs.Duration("tick", 10*time.Millisecond, "the interval between two answers of Stream")
	logFormat := fs.String("log", "console", "log to stderr as `console`, json, or off")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *drain <= 0 || *tick <= 0 {
		fmt.Fprintln(os.Stderr, "grpc: -drain and -tick must be positive")
		return 2
	}
	log, err := newLogger(*logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer log.Sync()
	if err := serve(log, *addr, *pidFile, *drain, *tick); err != nil {
		return 1 // logged by serve
	}
	return 0
}

func serve(log *zap.Logger, addr, pidFile string, drain, tick time.Duration) (err error) {
	// Log why serve ended with the latest logger, the generation's.
	defer func() {
		if err != nil {
			log.Error("exit", zap.Int("pid", os.Getpid()), zap.Error(err))
		}
	}()
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log})
	if err != nil {
		return err
	}
	defer upg.Stop()
	log = upg.Logger() // with this generation's number
	pid := os.Getpid()

	// The listener is inherited from the previous generation, or created.
	ln, err := tcp.Listen(context.Background(), upg, "tcp", addr)
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	defer ln.Close()
	srv := grpc.NewServer()
	srv.RegisterService(&pidServiceDesc, &pidServer{pid: pid, generation: upg.Generation(), tick: tick})

	// Handle signals before Ready: from then on, anyone may send them.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(signals)

	// Ready commits the upgrade: the previous generation stops, and only
	// now does this one serve.
	if err := upg.Ready(); err != nil {
		return err
	}
	tl := &trackingListener{Listener: ln}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tl) }()

wait:
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				go upgrade(log, upg)
				continue
			}
			upg.Stop() // stopping for good; ends an upgrade in flight
			break wait
		case <-upg.Exit(): // the next generation is ready
			break wait
		case err := <-served:
			srv.Stop()
			return fmt.Errorf("serve: %w", err)
		}
	}

	// Answer every RPC already under way, within the drain deadline.
	start := time.Now()
	forced := stopAccepting(tl, served, drain)
	forced = gracefulStop(srv, drain-time.Since(start)) || forced
	fields := []zap.Field{zap.Int("pid", pid), zap.Duration("duration", time.Since(start)), zap.Bool("forced", forced)}
	if forced {
		// RPCs still under way at the drain deadline were ended.
		log.Warn("drained", fields...)
	} else {
		log.Info("drained", fields...)
	}
	return nil
}

// stopAccepting closes l, waits until Serve has returned (its error is
// l's, closed), and then until every connection it accepted has reached
// the server's connection handler, within deadline. It reports whether
// the deadline passed first.
func stopAccepting(l *trackingListener, served <-chan error, deadline time.Duration) (late bool) {
	l.Close()
	<-served // Accept failed: Serve accepts no more
	done := make(chan struct{})
	go func() {
		l.accepted.Wait()
		close(done)
	}()
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true // GracefulStop then closes what is left
	}
}

// trackingListener counts the connections it accepted that grpc.Server
// has not yet started to handle. The server's first call on a connection
// (SetDeadline, Read or Close) comes after its check for a stop, which
// closes the connection unanswered once GracefulStop has begun.
//
// The wrapped connections are not *net.TCPConn, and grpc-go sets
// TCP_USER_TIMEOUT (keepalive.ServerParameters.Timeout) only on those: a
// server that needs it sets it on each connection itself, in Accept.
type trackingListener struct {
	net.Listener
	accepted sync.WaitGroup
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return &trackedConn{Conn: c, handled: sync.OnceFunc(l.accepted.Done)}, nil
}

type trackedConn struct {
	net.Conn
	handled func()
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	c.handled()
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) Read(b []byte) (int, error) {
	c.handled()
	return c.Conn.Read(b)
}

func (c *trackedConn) Close() error {
	c.handled()
	return c.Conn.Close()
}

// gracefulStop runs srv.GracefulStop, and srv.Stop if that takes longer
// than deadline. It reports whether Stop had to cut RPCs short.
func gracefulStop(srv *grpc.Server, deadline time.Duration) (forced bool) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		srv.Stop() // closes every connection; GracefulStop then returns
		<-done
		return true
	}
}

// upgrade starts the next generation; on failure this one keeps serving.
func upgrade(log *zap.Logger, upg *tableflip.Upgrader) {
	start := time.Now()
	if _, err := upg.Upgrade(context.Background()); err != nil {
		log.Error("upgrade failed, still serving", zap.Int("pid", os.Getpid()),
			zap.Duration("duration", time.Since(start)), zap.Error(err))
	}
}

// newLogger returns the logger that -log asks for: zap's production
// logger in JSON or console encoding, or one that logs nothing.
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
		return nil, fmt.Errorf("grpc: -log must be console, json or off")
	}
	return cfg.Build()
}

// pidServer implements the service.
type pidServer struct {
	pid, generation int
	tick            time.Duration
}

func (s *pidServer) prefix() string {
	return fmt.Sprintf("pid=%d generation=%d", s.pid, s.generation)
}

func (s *pidServer) get(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	return wrapperspb.String(s.prefix() + " " + req.GetValue()), nil
}

func (s *pidServer) stream(req *wrapperspb.UInt32Value, stream grpc.ServerStream) error {
	n := req.GetValue()
	if n > maxStream {
		return status.Errorf(codes.InvalidArgument, "Stream: %d answers asked, at most %d", n, maxStream)
	}
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for i := range n {
		if i > 0 {
			select {
			case <-t.C:
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if err := stream.SendMsg(wrapperspb.String(fmt.Sprintf("%s seq=%d", s.prefix(), i))); err != nil {
			return err
		}
	}
	return nil
}

// pidServiceDesc is what protoc-gen-go-grpc would generate from the
// service above.
var pidServiceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Get",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			s := srv.(*pidServer)
			if interceptor == nil {
				return s.get(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: GetMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return s.get(ctx, req.(*wrapperspb.StringValue))
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(wrapperspb.UInt32Value)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(*pidServer).stream(in, stream)
		},
	}},
	Metadata: "tableflip/example/pid.proto",
}
