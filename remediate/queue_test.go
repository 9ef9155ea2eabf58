package remediate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"go.uber.org/zap"
)

func alerts(n int) []Alert {
	out := make([]Alert, n)
	for i := range out {
		out[i] = Alert{Alert: template.Alert{Status: StatusFiring, Fingerprint: fmt.Sprintf("%016x", i)}}
	}
	return out
}

func TestQueueTakesAllOfANotificationOrNone(t *testing.T) {
	q := NewQueue(5)
	if err := q.Accept(alerts(3)); err != nil {
		t.Fatal(err)
	}
	if err := q.Accept(alerts(3)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("error %v, want ErrQueueFull", err)
	}
	if q.Len() != 3 {
		t.Fatalf("a refused notification changed the queue: %d alerts, want 3", q.Len())
	}
	if err := q.Accept(alerts(2)); err != nil {
		t.Fatalf("two more alerts should fit exactly: %v", err)
	}
}

func TestQueueKeepsOrderAcrossWrapAround(t *testing.T) {
	q := NewQueue(3)
	ctx := context.Background()
	var got []string
	for round := range 4 {
		batch := alerts(2)
		batch[0].Fingerprint = fmt.Sprintf("r%d-a", round)
		batch[1].Fingerprint = fmt.Sprintf("r%d-b", round)
		if err := q.Accept(batch); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			a, ok := q.Next(ctx)
			if !ok {
				t.Fatal("queue ended early")
			}
			got = append(got, a.Fingerprint)
		}
	}
	want := "[r0-a r0-b r1-a r1-b r2-a r2-b r3-a r3-b]"
	if fmt.Sprint(got) != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestQueueKeepsOrderWhileItsRingGrowsAndShrinks(t *testing.T) {
	q := NewQueue(3000)
	ctx := context.Background()
	next, want := 0, 0
	take := func(n int) {
		t.Helper()
		for range n {
			a, ok := q.Next(ctx)
			if !ok {
				t.Fatal("queue ended early")
			}
			if a.Fingerprint != fmt.Sprint(want) {
				t.Fatalf("took alert %s, want %d", a.Fingerprint, want)
			}
			want++
		}
	}
	put := func(n int) {
		t.Helper()
		batch := alerts(n)
		for i := range batch {
			batch[i].Fingerprint = fmt.Sprint(next)
			next++
		}
		if err := q.Accept(batch); err != nil {
			t.Fatal(err)
		}
	}

	for q.Len() < 2000 {
		put(97) // the ring wraps before each growth
		take(31)
	}
	take(q.Len())
	if len(q.items) != minRing {
		t.Errorf("the drained ring kept %d slots, want %d", len(q.items), minRing)
	}
	put(50)
	take(50)
	if q.Cap() != 3000 {
		t.Errorf("capacity %d, want 3000", q.Cap())
	}
}

func TestQueueRefusesAlertsOnceClosed(t *testing.T) {
	q := NewQueue(5)
	q.Close()
	if err := q.Accept(alerts(1)); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("error %v, want ErrQueueClosed", err)
	}
}

// countingProcessor counts alerts, taking delay for each, and notices cancellation.
type countingProcessor struct {
	delay     time.Duration
	done      atomic.Int64
	cancelled atomic.Int64
}

func (p *countingProcessor) Process(ctx context.Context, _ Alert) {
	select {
	case <-time.After(p.delay):
		p.done.Add(1)
	case <-ctx.Done():
		p.cancelled.Add(1)
	}
}

func TestWorkersDrainTheQueueOnStop(t *testing.T) {
	q := NewQueue(100)
	p := &countingProcessor{delay: 5 * time.Millisecond}
	w := NewWorkers(q, p, 4, zap.NewNop())
	w.Start()
	if err := q.Accept(alerts(40)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if left := w.Stop(ctx); len(left) != 0 {
		t.Fatalf("%d alerts left after a generous grace period", len(left))
	}
	if got := p.done.Load(); got != 40 {
		t.Errorf("%d alerts handled, want all 40", got)
	}
}

func TestWorkersReturnWhatTheGracePeriodLeftUnstarted(t *testing.T) {
	q := NewQueue(100)
	p := &countingProcessor{delay: time.Hour}
	w := NewWorkers(q, p, 2, zap.NewNop())
	w.Start()
	if err := q.Accept(alerts(10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return q.Len() == 8 }) // both workers busy

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	left := w.Stop(ctx)
	if len(left) != 8 {
		t.Errorf("%d alerts returned, want the 8 never started", len(left))
	}
	if got := p.cancelled.Load(); got != 2 {
		t.Errorf("%d alerts under way were cancelled, want 2", got)
	}
}

func TestQueueServesConcurrentProducersAndConsumers(t *testing.T) {
	q := NewQueue(64)
	p := &countingProcessor{}
	w := NewWorkers(q, p, 4, zap.NewNop())
	w.Start()

	var wg sync.WaitGroup
	var accepted atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 100 {
				for q.Accept(alerts(3)) != nil {
					time.Sleep(time.Millisecond)
				}
				accepted.Add(3)
			}
		})
	}
	wg.Wait()
	w.Stop(context.Background())
	if p.done.Load() != accepted.Load() {
		t.Errorf("handled %d of %d accepted alerts", p.done.Load(), accepted.Load())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
