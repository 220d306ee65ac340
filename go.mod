module github.com/tableflip-go/tableflip

go 1.26.0

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	go.uber.org/fx v1.24.0
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
	golang.org/x/sys v0.50.0
)

require (
	go.uber.org/dig v1.19.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
)
