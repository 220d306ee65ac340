package fxmodule

import (
	"context"

	"go.uber.org/fx"
)

// A Drainer is a server that this generation must drain before it exits:
// stop accepting, finish or hand over the work in flight, within ctx. When
// the app stops, Module drains every Drainer of DrainerGroup at
// the same time, then stops the Upgrader. A *drain.Server (package
// tableflip/drain) is a Drainer; the package documentation of drain shows
// the pattern for gRPC and raw TCP servers.
type Drainer interface {
	Drain(ctx context.Context) error
}

// DrainerFunc adapts a function to Drainer.
type DrainerFunc func(ctx context.Context) error

// Drain calls f.
func (f DrainerFunc) Drain(ctx context.Context) error { return f(ctx) }

// AsDrainer annotates constructor, whose result implements Drainer, so
// that the result goes into DrainerGroup:
//
//	fx.Provide(fxmodule.AsDrainer(newGRPCDrainer))
//
// The result is then a Drainer of the group only, not a value of its own
// type: provide the server itself separately and pass it to the
// constructor.
func AsDrainer(constructor any) any {
	return fx.Annotate(constructor, fx.As(new(Drainer)), fx.ResultTags(`group:"`+DrainerGroup+`"`))
}
