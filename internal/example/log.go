package example

import (
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// LogFlag defines the -log flag on fs: how the program logs to stderr,
// "console" (the default), "json", or "off". Pass its value to NewLogger.
func LogFlag(fs *flag.FlagSet) *string {
	return fs.String("log", "console", "log to stderr as `console`, json, or off")
}

// NewLogger returns the logger that -log asks for: zap's production
// logger, in JSON or in console encoding with ISO 8601 times, or one that
// logs nothing. Errors carry their own story, so no stack traces. Any
// other format is an error that names program (the command's name).
func NewLogger(program, format string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.DisableStacktrace = true
	switch format {
	case "json":
	case "console":
		cfg.Encoding = "console"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "off":
		return zap.NewNop(), nil
	default:
		return nil, fmt.Errorf("%s: -log must be console, json or off", program)
	}
	return cfg.Build()
}

// Run is the end of an example's main: it runs serve with the logger that
// -log (logFormat) asks for, and returns the exit status: 2 when logFormat
// is not a format (said on stderr), 1 when serve fails (its error logged
// as "exit"), else 0.
func Run(program, logFormat string, serve func(log *zap.Logger) error) int {
	log, err := NewLogger(program, logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer log.Sync()
	if err := serve(log); err != nil {
		log.Error("exit", zap.Error(err))
		return 1
	}
	return 0
}
