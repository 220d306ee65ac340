// Package testcert makes the certificates this module's tests serve: a
// throwaway certificate authority whose leaves a client trusts through
// one pool, and a single self-signed certificate for a test that needs
// no more.
//
// A test whose servers change certificate (a new one per generation, or
// one replaced on disk while a generation runs) signs each with one CA,
// so that the client trusts them all and can resume a session across the
// change:
//
//	ca, err := testcert.NewCA("mypkg test CA")
//	...
//	cert, err := ca.Leaf(1, "127.0.0.1")            // for tls.Config.Certificates
//	leaf, err := ca.WriteLeaf(2, certFile, keyFile) // PEM files, for a server that loads them
//	client := &tls.Config{RootCAs: ca.Pool}
//
// WriteLeaf replaces each file by a rename, so that a server reading them
// at any moment sees a whole file. Fingerprint and PeerFingerprint name a
// certificate shortly, to tell which one a connection was served.
//
// A host is an IP address (an IP SAN) or a name (a DNS SAN); with no host
// given, a certificate is for 127.0.0.1, where the tests listen. Every
// certificate is valid from an hour ago to a day from now, has a P-256
// ECDSA key and is for server authentication.
//
// The package is for tests only: keys come from crypto/rand but nothing
// else about these certificates is fit for production. The user-facing
// examples (transport/tls/example_test.go, examples/tls) make their own
// certificate on purpose, so that a reader sees the whole program.
package testcert
