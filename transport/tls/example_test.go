package tlstransport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	tlstransport "github.com/tableflip-go/tableflip/transport/tls"
)

// A TLS listener that the next generation inherits with its ticket keys.
// (Here on tablefliptest's upgrader, which never upgrades, with an
// in-memory certificate; a service uses tableflip.New and CertFile/KeyFile.)
func ExampleListen() {
	upg := tablefliptest.New(nil)
	defer upg.Stop()
	cert, pool := exampleCertificate()

	ln, err := tlstransport.Listen(context.Background(), upg, "tcp", "127.0.0.1:0", &tlstransport.Config{
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
		Tickets: tlstransport.TicketOptions{Rotation: time.Hour, Lifetime: 24 * time.Hour},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over TLS\n")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ClientSessionCache: tls.NewLRUClientSessionCache(1)},
		DisableKeepAlives: true,
	}}
	for range 2 {
		resp, err := client.Get("https://" + ln.Addr().String())
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s resumed=%v\n", body[:len(body)-1], resp.TLS.DidResume)
	}
	fmt.Println("ticket keys:", len(ln.TicketKeys()))
	// Output:
	// hello over TLS resumed=false
	// hello over TLS resumed=true
	// ticket keys: 1
}

// Programs configured by name open "tls://host:port" once a configuration
// is set.
func ExampleSetDefaultConfig() {
	upg := tablefliptest.New(nil)
	defer upg.Stop()
	cert, _ := exampleCertificate()

	_, err := tableflip.Listen(context.Background(), upg, "tls://127.0.0.1:0")
	fmt.Println(err != nil)

	tlstransport.SetDefaultConfig(&tlstransport.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	defer tlstransport.SetDefaultConfig(nil)
	ln, err := tableflip.Listen(context.Background(), upg, "tls://127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	fmt.Printf("%T\n", ln)
	// Output:
	// true
	// *tlstransport.Listener
}

// exampleCertificate makes a self-signed certificate for 127.0.0.1 and a
// pool that trusts it.
func exampleCertificate() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
