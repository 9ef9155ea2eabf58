package remediate

import (
	"context"
	"sync"

	"go.uber.org/zap"
)

// Processor handles one alert taken from the queue. It returns when the alert's work is
// done or ctx ends.
type Processor interface {
	Process(ctx context.Context, a Alert)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, a Alert)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, a Alert) { f(ctx, a) }

// Workers drain a queue with a fixed number of goroutines.
type Workers struct {
	queue     *Queue
	processor Processor
	n         int
	logger    *zap.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewWorkers returns n workers that hand the alerts of queue to p.
func NewWorkers(queue *Queue, p Processor, n int, logger *zap.Logger) *Workers {
	return &Workers{queue: queue, processor: p, n: n, logger: logger}
}

// Start launches the workers.
func (w *Workers) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for range w.n {
		w.wg.Go(func() { w.loop(ctx) })
	}
}

func (w *Workers) loop(ctx context.Context) {
	for {
		a, ok := w.queue.Next(ctx)
		if !ok {
			return
		}
		w.processor.Process(ctx, a)
	}
}

// Stop closes the queue and lets the workers finish what it holds until ctx ends. Then
// it cancels the work under way, waits for the workers, and returns the alerts that
// were never started.
func (w *Workers) Stop(ctx context.Context) []Alert {
	w.queue.Close()
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()

	select {
	case <-done:
		w.cancel()
		return nil
	case <-ctx.Done():
	}

	w.cancel()
	<-done
	return w.queue.Drain()
}
