package store

import (
	"context"
	"sync"
)

// watcher queues events for one Watch call without bound, so that a slow
// reader never blocks writers and never misses a change.
type watcher struct {
	mu    sync.Mutex
	queue []Event
	ended bool          // the store closed: deliver the queue, then stop
	wake  chan struct{} // capacity 1: "the queue or ended changed"
}

func newWatcher() *watcher { return &watcher{wake: make(chan struct{}, 1)} }

func (w *watcher) push(ev Event) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	w.signal()
}

func (w *watcher) end() {
	w.mu.Lock()
	w.ended = true
	w.mu.Unlock()
	w.signal()
}

func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run delivers queued events to out until ctx ends or the store has closed
// and everything queued is delivered; then it closes out.
func (w *watcher) run(ctx context.Context, out chan<- Event) {
	defer close(out)
	for {
		w.mu.Lock()
		batch, ended := w.queue, w.ended
		w.queue = nil
		w.mu.Unlock()
		for _, ev := range batch {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
		if ended {
			return
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		}
	}
}
