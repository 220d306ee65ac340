package testcert_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"

	"github.com/tableflip-go/tableflip/internal/testcert"
)

// A server serves a leaf of a test CA; a client that trusts the CA's pool
// verifies it.
func ExampleCA_Leaf() {
	ca, err := testcert.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	cert, err := ca.Leaf(1, "127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hello")
	}()

	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		log.Fatal(err)
	}
	<-done
	cs := c.ConnectionState()
	fmt.Println(string(b))
	fmt.Println("issuer:", cs.PeerCertificates[0].Issuer.CommonName)
	fmt.Println("served the leaf:", testcert.PeerFingerprint(&cs) == testcert.Fingerprint(cert.Leaf))
	// Output:
	// hello
	// issuer: example CA
	// served the leaf: true
}
