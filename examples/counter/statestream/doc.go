// Package statestream hands a service's in-memory state to the next
// generation without losing an update that was acknowledged to a client.
//
// tableflip's Options.SaveState takes one snapshot at upgrade time, while
// the old generation still serves: every update it acknowledges after the
// snapshot is lost to the new generation. A Stream instead opens a
// companion socket for each upgrade (tableflip.Handoff.AddFile) and sends
// the child a snapshot followed by every change the old generation makes,
// in order, until the old generation has drained and takes no more
// writes. The new generation applies them all before it answers a request:
//
//	old generation                      new generation
//	Prepare: snapshot ------------->    Open: Restore(snapshot)
//	Update:  change, sent, then ack ->  Apply(change) ...
//	(child ready; old one drains,
//	 still answering and sending)
//	Close after the drain: end ----->   CaughtUp() closes: serve
//
// A change is written to the socket before Update returns, so before the
// client hears of it: if the old generation dies mid-handoff, every change
// it acknowledged is in the socket already, and the end of the stream
// (without its end marker) counts as caught up.
//
// Usage, with a counter (examples/counter is the whole program):
//
//	s, err := statestream.Open(upg, "counter", statestream.Config{
//		Snapshot: func() []byte { return strconv.AppendInt(nil, n, 10) },
//		Restore:  func(b []byte) (err error) { n, err = strconv.ParseInt(string(b), 10, 64); return },
//		Apply:    func(b []byte) error { n++; return nil },
//	})
//	...
//	// a write: the change and its record, under the stream's lock
//	err := s.Update(func() []byte { n++; return nil })
//	// every request: wait until the parent's changes are all applied
//	<-s.CaughtUp()
//	// after the drain, when this generation takes no more writes
//	s.Close(ctx)
package statestream
