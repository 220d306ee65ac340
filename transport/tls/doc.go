// Package tlstransport is the TLS transport: a TLS listener over a TCP
// socket that the next generation inherits, with the session-ticket keys
// handed over too, so that clients resume their TLS sessions across an
// upgrade. (The package name avoids a clash with crypto/tls.)
//
//	ln, err := tlstransport.Listen(ctx, upg, "tcp", ":8443", &tlstransport.Config{
//		CertFile: "/etc/app/cert.pem",
//		KeyFile:  "/etc/app/key.pem",
//	})
//	// ln returns *tls.Conn: http.Server.Serve(ln) serves HTTPS.
//
// # The socket
//
// The TCP socket is the one tcp.Listen returns for the same network and
// address, passed under the tcp transport's name. A program can therefore
// switch one address between plain TCP and TLS from one generation to the
// next and keep its socket (no connection is refused while it does).
//
// # Certificates
//
// Each generation loads CertFile and KeyFile when it calls Listen. Replace
// the files on disk and upgrade: the new generation serves the new
// certificate, the old one keeps serving the old one while it drains. A
// generation that cannot load them fails its upgrade (Listen returns an
// error wrapping the file error, which the child should report with
// Upgrader.Fail), and the running generation keeps serving.
//
// # Session-ticket keys
//
// crypto/tls encrypts session tickets with keys that, left to itself, it
// generates at random in each process: a ticket from one generation is
// useless to the next, and every client does a full handshake after an
// upgrade. Here the listener owns the keys (TicketOptions): a new key every
// Rotation, each key accepted for Lifetime after its creation. At every
// upgrade the current keys, with their creation times, travel to the child
// as the metadata of a record under the "tls" transport name (the file of
// that record is the same listening socket; the metadata of the tcp record
// belongs to the tcp transport). Rotation pauses from the start of an
// upgrade until it has failed, so that every ticket the old generation
// issues meanwhile is one the new generation can decrypt.
//
// # Addresses by name
//
// Importing the package registers the "tls" scheme. Because a TLS listener
// needs a configuration, "tls://host:port" addresses use the one given to
// SetDefaultConfig and fail with ErrNoConfig without it. For several
// configurations, register more schemes with NewTransport.
package tlstransport
