package fxmodule

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newSlogLogger logs to log through slog, for package drain, which takes a
// *slog.Logger. (go.uber.org/zap/exp/zapslog does this fully; this module
// keeps to zap itself.)
func newSlogLogger(log *zap.Logger) *slog.Logger {
	return slog.New(&slogHandler{log: log.WithOptions(zap.AddCallerSkip(3))})
}

type slogHandler struct {
	log    *zap.Logger
	prefix string // group prefix of attribute keys
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		return zapcore.InfoLevel
	}
	return zapcore.DebugLevel
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.Core().Enabled(zapLevel(l))
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	ce := h.log.Check(zapLevel(r.Level), r.Message)
	if ce == nil {
		return nil
	}
	fields := make([]zap.Field, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		fields = h.appendAttr(fields, a)
		return true
	})
	ce.Write(fields...)
	return nil
}

func (h *slogHandler) appendAttr(fields []zap.Field, a slog.Attr) []zap.Field {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		sub := &slogHandler{log: h.log, prefix: h.prefix + a.Key + "."}
		for _, ga := range v.Group() {
			fields = sub.appendAttr(fields, ga)
		}
		return fields
	}
	return append(fields, zap.Any(h.prefix+a.Key, v.Any()))
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var fields []zap.Field
	for _, a := range attrs {
		fields = h.appendAttr(fields, a)
	}
	return &slogHandler{log: h.log.With(fields...), prefix: h.prefix}
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &slogHandler{log: h.log, prefix: h.prefix + name + "."}
}
