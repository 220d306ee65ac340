module github.com/tableflip-go/tableflip/transport/quic

go 1.26.0

require (
	github.com/quic-go/quic-go v0.65.0
	github.com/tableflip-go/tableflip v0.0.0
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
	golang.org/x/net v0.56.0
)

require (
	github.com/coreos/go-systemd/v22 v22.7.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/tableflip-go/tableflip => ../..
