package tableflip

import (
	"os"

	"go.uber.org/zap"
)

// activationMatcher is an optional method of a Transport, found by type
// assertion: a plugin transport gets it by having a method
// MatchActivated(key string, f *os.File, name string) bool; the interface
// is not exported, to keep the package's names to the lifecycle. On the first
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
// A Transport that does not implement activationMatcher and is named after
// a network of package net ("tcp", "udp6", "unix", "unixgram", ...) gets
// matchSocketAddress with its name as the network, so the keys built-in
// transports use (the address as net.Listen takes it) match without any code
// of their own. MatchActivated runs on the goroutine that called Inherit,
// with nothing of the Upgrader's held.
type activationMatcher interface {
	MatchActivated(key string, f *os.File, name string) bool
}

// activation holds the files systemd passed to the first generation
// (socket activation) until an Inherit claims them or Ready closes them.
// A nil *activation has no files. It belongs to the Upgrader's run
// goroutine; only matching, which may resolve names, runs elsewhere, on a
// snapshot.
type activation struct {
	log   *zap.Logger
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

// candidate is an activated file not claimed yet, as matching sees it.
type candidate struct {
	index int
	f     *os.File
	name  string
}

// unclaimed lists the files no Inherit has claimed, nil when there are none.
func (a *activation) unclaimed() []candidate {
	if a == nil {
		return nil
	}
	var cs []candidate
	for i, f := range a.files {
		if f != nil {
			cs = append(cs, candidate{index: i, f: f, name: a.names[i]})
		}
	}
	return cs
}

// take moves the activated file i into inherited under transport and key,
// so that Inherit hands it out and passes it on like a file inherited from a
// parent. It reports false when the file was claimed or closed meanwhile,
// or the name was taken.
func (a *activation) take(i int, how string, inherited, passing map[string]*entry, transport, key string) bool {
	name := entryName(transport, key)
	if a == nil || a.files[i] == nil || inherited[name] != nil || passing[name] != nil {
		return false
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
		return false
	}
	inherited[name] = &entry{transport: transport, key: key, fd: fd}
	a.log.Info("claimed socket-activated file", fields...)
	return true
}

// matchActivated finds the first candidate whose name is key, or else the
// first one the transport accepts by address. It returns -1 when none
// matches. It runs off the run goroutine: matching may resolve names.
func matchActivated(cs []candidate, transport, key string) (int, string) {
	for _, c := range cs {
		if c.name != "" && c.name == key {
			return c.index, "name"
		}
	}
	accept := func(f *os.File, name string) bool { return matchSocketAddress(transport, key, f) }
	if t, ok := lookup(transport); ok {
		if m, ok := t.(activationMatcher); ok {
			accept = func(f *os.File, name string) bool { return m.MatchActivated(key, f, name) }
		}
	}
	for _, c := range cs {
		if accept(c.f, c.name) {
			return c.index, "address"
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
