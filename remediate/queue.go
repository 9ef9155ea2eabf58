package remediate

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrQueueFull is returned when a notification's alerts do not all fit in the queue.
// The caller answers 503 so that Alertmanager sends the notification again.
var ErrQueueFull = errors.New("queue full")

// ErrQueueClosed is returned when alerts are offered to a queue that is shutting down.
var ErrQueueClosed = errors.New("queue closed")

// Queue holds accepted alerts until a worker takes them. It is bounded, and takes all of
// a notification's alerts or none of them. Its ring grows with what waits and shrinks
// once a burst has drained, so that room promised but unused costs no memory, and no
// work of the garbage collector.
type Queue struct {
	mu       sync.Mutex
	capacity int
	items    []Alert // a ring, of at least minRing slots
	head     int
	size     int
	reserved int // slots promised to notifications being made durable
	closed   bool
	ready    chan struct{} // signalled when items arrive or the queue closes
}

// Ring sizes: the ring starts at minRing slots, and goes back to it once empty when it
// had grown past maxIdleRing.
const (
	minRing     = 64
	maxIdleRing = 1024
)

// NewQueue returns a queue that holds up to capacity alerts.
func NewQueue(capacity int) *Queue {
	return &Queue{capacity: capacity, items: make([]Alert, minRing), ready: make(chan struct{}, 1)}
}

// Accept adds all of alerts, or none of them when they do not fit.
func (q *Queue) Accept(alerts []Alert) error {
	if err := q.Reserve(len(alerts)); err != nil {
		return err
	}
	q.Commit(alerts)
	return nil
}

// Reserve promises room for n alerts, so that they can be made durable before they are
// queued with Commit; Unreserve gives the room back when that fails.
func (q *Queue) Reserve(n int) error {
	q.mu.Lock()
	defer q.mu.Unlock()

	if q.closed {
		return ErrQueueClosed
	}
	if q.size+q.reserved+n > q.capacity {
		return ErrQueueFull
	}
	q.reserved += n
	return nil
}

// Unreserve gives back room promised by Reserve.
func (q *Queue) Unreserve(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()

	q.reserved -= n
}

// Commit queues alerts into room promised by Reserve. It queues them even after Close,
// since they were accepted before.
func (q *Queue) Commit(alerts []Alert) {
	q.mu.Lock()
	defer q.mu.Unlock()

	if need := q.size + len(alerts); need > len(q.items) {
		q.resize(max(need, 2*len(q.items)))
	}
	for _, a := range alerts {
		q.items[(q.head+q.size)%len(q.items)] = a
		q.size++
	}
	q.reserved -= len(alerts)
	q.signal()
}

// Next waits for an alert. It returns false once the queue is closed and empty, or when
// ctx ends.
func (q *Queue) Next(ctx context.Context) (Alert, bool) {
	for {
		if ctx.Err() != nil {
			return Alert{}, false
		}
		q.mu.Lock()
		if q.size > 0 {
			a := q.items[q.head]
			q.items[q.head] = Alert{}
			q.head = (q.head + 1) % len(q.items)
			q.size--
			if q.size == 0 && len(q.items) > maxIdleRing {
				q.resize(minRing) // a burst has drained
			}
			if q.size > 0 || q.closed {
				q.signal() // wake the next waiting worker
			}
			q.mu.Unlock()
			return a, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			q.signal()
			return Alert{}, false
		}

		select {
		case <-q.ready:
		case <-ctx.Done():
			return Alert{}, false
		}
	}
}

// Close stops the queue from taking alerts; those already in it can still be taken.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()

	q.closed = true
	q.signal()
}

// Len returns how many alerts wait.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()

	return q.size
}

// Cap returns how many alerts the queue holds at most.
func (q *Queue) Cap() int { return q.capacity }

// resize moves the waiting alerts to a ring of n slots, n >= q.size. q.mu is held.
func (q *Queue) resize(n int) {
	items := make([]Alert, n)
	for i := range q.size {
		items[i] = q.items[(q.head+i)%len(q.items)]
	}
	q.items, q.head = items, 0
}

// Drain removes and returns every alert still waiting.
func (q *Queue) Drain() []Alert {
	q.mu.Lock()
	defer q.mu.Unlock()

	out := make([]Alert, 0, q.size)
	for q.size > 0 {
		out = append(out, q.items[q.head])
		q.items[q.head] = Alert{}
		q.head = (q.head + 1) % len(q.items)
		q.size--
	}
	return out
}

// signal wakes one waiting worker without blocking; the caller holds mu or is about to
// return.
func (q *Queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Register exposes the queue's depth and capacity as metrics.
func (q *Queue) Register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "remediator_queue_depth",
			Help: "Accepted alerts waiting for a worker.",
		}, func() float64 { return float64(q.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "remediator_queue_capacity",
			Help: "Accepted alerts the queue holds at most.",
		}, func() float64 { return float64(q.Cap()) }),
	)
}
