package tableflip

import (
	"os"
	"sync"

	"go.uber.org/zap"
)

// ActivationMatcher is an optional interface of a Transport. On the first
// start of a socket-activated service (systemd passed LISTEN_FDS), Inherit
// offers every activated file that no earlier Inherit claimed to the
// transport registered under the transport name it was called with, in the
// order systemd passed them, and hands out the first one MatchActivated
// accepts as if the parent had passed it under that key.
//
// name is the file's name from LISTEN_FDNAMES (FileDescriptorName= in the
// .socket unit), "" when systemd gave none. A file whose name equals the key
// is handed out before MatchActivated is asked, whatever the transport.
//
// A Transport that does not implement ActivationMatcher and is named after
// a network of package net ("tcp", "udp6", "unix", "unixgram", ...) gets
// MatchSocketAddress with its name as the network, so the keys built-in
// transports use (the address as net.Listen takes it) match without any code
// of their own. MatchActivated runs with the upgrader's lock held: it must
// not call back into the Upgrader.
type ActivationMatcher interface {
	MatchActivated(key string, f *os.File, name string) bool
}

// activation holds the files systemd passed to the first generation
// (socket activation) until an Inherit claims them or Ready closes them.
// A nil *activation has no files.
type activation struct {
	log   *zap.Logger
	mu    sync.Mutex
	files []*os.File // nil once claimed or closed
	names []string
}

// newActivation takes ownership of files, named by names ("" for none).
func newActivation(log *zap.Logger, files []*os.File, names []string) *activation {
	if len(files) == 0 {
		return nil
	}
	a := &activation{log: log, files: files, names: make([]string, len(files))}
	copy(a.names, names)
	return a
}

// claim moves the activated file that matches transport and key, if any,
// into inherited under that name, so that Inherit hands it out and passes it
// on like a file inherited from a parent. Nothing happens when the name is
// already inherited or passed. The caller holds the upgrader's lock.
func (a *activation) claim(inherited, passing map[string]*entry, transport, key string) {
	if a == nil {
		return
	}
	name := entryName(transport, key)
	if inherited[name] != nil || passing[name] != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	i, how := a.match(transport, key)
	if i < 0 {
		return
	}
	f := a.files[i]
	a.files[i] = nil
	fields := []zap.Field{
		zap.String("transport", transport), zap.String("key", key),
		zap.Int("fd", listenFdsStart+i), zap.String("fdname", a.names[i]),
		zap.String("address", describeSocket(f)), zap.String("matched_by", how),
	}
	fd, err := takeFile(f) // closes f
	if err != nil {
		a.log.Warn("cannot claim socket-activated file", append(fields, zap.Error(err))...)
		return
	}
	inherited[name] = &entry{transport: transport, key: key, fd: fd}
	a.log.Info("claimed socket-activated file", fields...)
}

// match finds the first unclaimed file whose name is key, or else the first
// one the transport accepts by address. It returns -1 when none matches.
func (a *activation) match(transport, key string) (int, string) {
	for i, f := range a.files {
		if f != nil && a.names[i] != "" && a.names[i] == key {
			return i, "name"
		}
	}
	accept := func(f *os.File, name string) bool { return MatchSocketAddress(transport, key, f) }
	if t, ok := Lookup(transport); ok {
		if m, ok := t.(ActivationMatcher); ok {
			accept = func(f *os.File, name string) bool { return m.MatchActivated(key, f, name) }
		}
	}
	for i, f := range a.files {
		if f != nil && accept(f, a.names[i]) {
			return i, "address"
		}
	}
	return -1, ""
}

// closeUnclaimed closes, with a warning each, the activated files that no
// Inherit claimed. It runs when the generation becomes ready and on a stop
// before that.
func (a *activation) closeUnclaimed() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, f := range a.files {
		if f == nil {
			continue
		}
		a.log.Warn("closing socket-activated file nobody claimed",
			zap.Int("fd", listenFdsStart+i), zap.String("fdname", a.names[i]),
			zap.String("address", describeSocket(f)))
		f.Close()
		a.files[i] = nil
	}
}

// listenFdsStart is SD_LISTEN_FDS_START: systemd passes activated files
// from fd 3 on.
const listenFdsStart = 3
