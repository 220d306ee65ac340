package tlstransport

import "errors"

var (
	// ErrNoConfig is returned for a "tls://" address opened before
	// SetDefaultConfig, and by Listen with a nil Config.
	ErrNoConfig = errors.New("tlstransport: no TLS configuration (tls:// addresses take theirs from tlstransport.SetDefaultConfig)")
	// ErrNoCertificate is returned by Listen when the configuration names
	// no certificate.
	ErrNoCertificate = errors.New("tlstransport: no certificate: set Config.CertFile and Config.KeyFile, or Certificates or GetCertificate in Config.TLS")
)
