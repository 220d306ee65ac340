package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Worker does numbered items one after the other. One generation at a
// time works: the old one pauses and finishes its item in flight when it
// hands over (SaveState), the new one starts once it is ready.
type Worker struct {
	log      *zap.Logger
	itemTime time.Duration
	record   *os.File // nil without -record
	pid      int
	gen      int

	mu       sync.Mutex
	cond     *sync.Cond
	next     int  // the next item to take
	inflight int  // the item being done, -1 if none
	paused   bool // handing over or handed over: take no new item
	stopping bool
	started  bool
	loopDone chan struct{}
}

func newWorker(f flags, log *zap.Logger, lc fx.Lifecycle) (*Worker, error) {
	w := &Worker{log: log.Named("worker"), itemTime: f.itemTime, pid: os.Getpid(), inflight: -1, loopDone: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	if f.record != "" {
		rf, err := os.OpenFile(f.record, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		w.record = rf
		lc.Append(fx.StopHook(rf.Close))
	}
	return w, nil
}

// startWorker reads the item to start at from the previous generation's
// state (before Ready, as LoadState requires), and starts the work when
// this generation is ready. If an upgrade fails, the work goes on here.
func startWorker(lc fx.Lifecycle, w *Worker, upg *tableflip.Upgrader) {
	lc.Append(fx.StartHook(func() error {
		if err := w.load(upg.LoadState()); err != nil {
			return err
		}
		w.gen = upg.Generation()
		upg.AddHooks(tableflip.Hooks{
			Ready: w.start,
			Done: func(pid int, err error) {
				if err != nil {
					w.resume()
				}
			},
		})
		return nil
	}))
}

// Next is the next item to take.
func (w *Worker) Next() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

func (w *Worker) load(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("worker: read the state of the previous generation: %w", err)
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("worker: the previous generation handed over %q, want an item number", s)
		}
		w.next = n
	}
	return nil
}

func (w *Worker) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.stopping {
		return
	}
	w.started = true
	w.writeRecord("START pid=%d gen=%d next=%d", w.pid, w.gen, w.next)
	w.log.Info("worker started", zap.Int("next_item", w.next))
	go w.loop()
}

func (w *Worker) loop() {
	defer close(w.loopDone)
	for {
		w.mu.Lock()
		for w.paused && !w.stopping {
			w.cond.Wait()
		}
		if w.stopping {
			w.mu.Unlock()
			return
		}
		item := w.next
		w.inflight = item
		w.mu.Unlock()

		time.Sleep(w.itemTime) // the work; once begun, an item is finished

		w.mu.Lock()
		w.writeRecord("DONE item=%d pid=%d gen=%d", item, w.pid, w.gen)
		w.next = item + 1
		w.inflight = -1
		w.cond.Broadcast()
		w.mu.Unlock()
	}
}

// SaveState runs in this generation when an upgrade hands over: it stops
// taking items, waits for the one in flight, and writes the number of the
// next one for the new generation. The worker stays paused: the new
// generation takes over, or, if the upgrade fails, resume restarts it.
func (w *Worker) SaveState(ctx context.Context, out io.Writer) error {
	w.mu.Lock()
	w.paused = true
	finished := w.inflight
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	for w.inflight >= 0 && ctx.Err() == nil {
		w.cond.Wait()
	}
	stop()
	if w.inflight >= 0 {
		w.paused = false
		w.cond.Broadcast()
		w.mu.Unlock()
		return fmt.Errorf("worker: item %d still in flight: %w", w.inflight, ctx.Err())
	}
	next := w.next
	w.writeRecord("HANDOFF next=%d inflight=%d pid=%d", next, finished, w.pid)
	w.mu.Unlock()
	w.log.Info("worker handing over", zap.Int("next_item", next), zap.Int("finished_first", finished))
	_, err := fmt.Fprintf(out, "%d\n", next)
	return err
}

// resume takes up the work again after a failed upgrade.
func (w *Worker) resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused && !w.stopping {
		w.log.Info("upgrade failed, worker resumes", zap.Int("next_item", w.next))
	}
	w.paused = false
	w.cond.Broadcast()
}

// Drain stops taking items and waits for the one in flight. It makes the
// Worker an fxmodule.Drainer, so it runs when the generation stops, after
// an upgrade (the worker is paused already) or for good.
func (w *Worker) Drain(ctx context.Context) error {
	w.mu.Lock()
	w.stopping = true
	started, finished := w.started, w.inflight
	w.cond.Broadcast()
	w.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-w.loopDone:
	case <-ctx.Done():
		return fmt.Errorf("worker: item %d still in flight: %w", finished, ctx.Err())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.paused {
		w.writeRecord("STOP next=%d inflight=%d pid=%d", w.next, finished, w.pid)
	}
	return nil
}

// writeRecord appends one line to the record file; w.mu is held.
func (w *Worker) writeRecord(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	w.log.Debug(line)
	if w.record == nil {
		return
	}
	// One write per line, in append mode: lines of concurrent
	// generations never interleave.
	if _, err := w.record.Write([]byte(line + "\n")); err != nil && !errors.Is(err, os.ErrClosed) {
		w.log.Error("record", zap.Error(err))
	}
}

var _ interface{ Drain(context.Context) error } = (*Worker)(nil)
