package tlstransport_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	tlstransport "github.com/tableflip-go/tableflip/transport/tls"
)

// Bad input in a first generation: each a clear error, no descriptor left
// open, nothing passed on.
func TestBadInput(t *testing.T) {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer upg.Stop()
	ctx := context.Background()
	ca, cert, key := newCertFiles(t, 1)
	dir := filepath.Dir(cert)

	for _, tc := range []struct {
		name string
		open func() error
		is   error
		want string
	}{
		{"unknown scheme", func() error {
			_, err := tableflip.Listen(ctx, upg, "tlss://127.0.0.1:0")
			return err
		}, tableflip.ErrUnknownTransport, `"tlss"`},
		{"tls uri without configuration", func() error {
			_, err := tableflip.Listen(ctx, upg, "tls://127.0.0.1:0")
			return err
		}, tlstransport.ErrNoConfig, "tls://127.0.0.1:0"},
		{"nil config", func() error {
			_, err := tlstransport.Listen(ctx, upg, "tcp", "127.0.0.1:0", nil)
			return err
		}, tlstransport.ErrNoConfig, "tlstransport:"},
		{"no certificate", func() error {
			_, err := tlstransport.Listen(ctx, upg, "tcp", "127.0.0.1:0", &tlstransport.Config{})
			return err
		}, tlstransport.ErrNoCertificate, "tlstransport: no certificate"},
		{"missing cert file", func() error {
			_, err := tlstransport.Listen(ctx, upg, "tcp", "127.0.0.1:0",
				&tlstransport.Config{CertFile: filepath.Join(dir, "missing.pem"), KeyFile: key})
			return err
		}, fs.ErrNotExist, "missing.pem"},
		{"key does not match", func() error {
			other := filepath.Join(dir, "other")
			if _, err := ca.WriteLeaf(2, other+".crt", other+".key"); err != nil {
				return err
			}
			_, err := tlstransport.Listen(ctx, upg, "tcp", "127.0.0.1:0",
				&tlstransport.Config{CertFile: cert, KeyFile: other + ".key"})
			return err
		}, nil, "private key does not match"},
		{"lifetime shorter than rotation", func() error {
			_, err := tlstransport.Listen(ctx, upg, "tcp", "127.0.0.1:0", &tlstransport.Config{CertFile: cert, KeyFile: key,
				Tickets: tlstransport.TicketOptions{Rotation: 2 * time.Hour, Lifetime: time.Hour}})
			return err
		}, nil, "shorter than the rotation"},
		{"unknown network", func() error {
			_, err := tlstransport.Listen(ctx, upg, "udp", "127.0.0.1:0", &tlstransport.Config{CertFile: cert, KeyFile: key})
			return err
		}, nil, `unknown network "udp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proctest.ExpectError(t, tc.open, tc.is, tc.want, "tlstransport: ", "tableflip: ")
		})
	}
	// None of the failures left a name claimed: a good listener on the
	// same address works.
	ln, err := tlstransport.Listen(ctx, upg, "tcp", "127.0.0.1:0", &tlstransport.Config{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
