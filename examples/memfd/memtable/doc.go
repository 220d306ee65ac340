// Package memtable is a plugin author's transport for tableflip: an
// in-memory table that lives in a memfd and is handed from generation to
// generation without being copied. It is the worked example of
// docs/writing-a-transport.md, built only on tableflip's public API.
//
//	table, err := memtable.Open(ctx, upg, "counters", memtable.Options{Slots: 4096})
//	// or, by name: tableflip.Open(ctx, upg, "memfd://counters?slots=4096")
//	n, err := table.Add("requests", 1)
//
// The first generation creates the memfd, sealed against resizing, and
// maps it. At an upgrade the old generation stops writing (Hooks.Prepare)
// and sends the checksum of the memory with the memfd; the new generation
// maps the same memory, verifies the checksum, and starts writing once it
// is ready (Hooks.Ready). If the upgrade fails, the old generation writes
// again (Hooks.Done). Every generation can read at any time: a seqlock in
// the table's header lets a draining generation read while its successor
// writes.
//
// The table is memory, not storage: it lives as long as one generation
// holds it. Linux only; elsewhere Open returns ErrNotSupported.
package memtable
