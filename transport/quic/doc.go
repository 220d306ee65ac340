// Package tfquic runs a quic-go server whose connections survive upgrades.
//
// Every generation of the service shares one UDP socket (transport/udp).
// Each connection ID this generation hands out carries its generation tag
// (IDGenerator), so a datagram of a connection, whichever generation reads
// it from the shared socket, is steered to the generation that owns the
// connection (transport/udp/steer) and answered by it. New connections go
// to the newest generation. The stateless-reset, token and session-ticket
// keys are derived from a secret all generations share, so resets, Retry
// tokens and TLS resumption work across generations.
//
//	t, err := tfquic.New(ctx, upg, "udp", ":443", nil) // before Ready
//	upg.Ready()
//	ln, err := t.Listen(tlsConf, quicConf) // serve only after Ready
//	go acceptLoop(ln)
//	<-upg.Exit()
//	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	t.Drain(ctx) // own connections to their end, or CONNECTION_CLOSE at the deadline
//
// An old generation keeps its connections until they close or its drain
// deadline passes; then it closes each with CONNECTION_CLOSE and exits.
// A generation that has exited (or was killed) is answered for by the
// newer one with stateless resets, rate-limited, so its clients learn at
// once. HTTP/3 servers (quic-go's http3) call Shutdown when the drain
// starts: GOAWAY sends new requests to new connections, to the new
// generation.
//
// Steering needs Linux; elsewhere New returns an error wrapping
// tableflip.ErrNotSupported. See docs/quic.md for the design, the numbers
// and the limits (connection IDs are 8 bytes in every generation; GRO is
// left off on the shared socket).
package tfquic
