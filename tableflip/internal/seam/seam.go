// Package seam lets tablefliptest build tableflip's standalone Upgrader
// without the constructor being part of tableflip's API.
package seam

import "go.uber.org/zap"

// NewStandalone is set by package tableflip when it is initialized; it
// returns a *tableflip.Upgrader.
var NewStandalone func(log *zap.Logger) any
