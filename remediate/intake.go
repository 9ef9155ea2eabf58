package remediate

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/state"
)

// intakeBucket holds accepted alerts until they are handled.
const intakeBucket = "intake"

// resolutionTTL is how long a resolution is remembered to cancel runs of its occurrence.
const resolutionTTL = 24 * time.Hour

// Intake makes accepted notifications durable before the webhook answers, then queues
// their alerts. A notification stays in the store until every run its alerts started
// has finished, so that a crash loses nothing: Restore queues what is left at start.
type Intake struct {
	store  state.Store
	queue  *Queue
	logger *zap.Logger
	seq    atomic.Uint64

	mu          sync.Mutex
	resolutions map[string]time.Time // occurrence → when its resolution arrived

	doneMu   sync.Mutex
	pending  map[string]int // stored notification → its alerts not yet handled
	done     []string       // handled notifications' keys, waiting to be forgotten together
	flush    chan struct{}  // wakes the forgetter
	stop     chan struct{}
	finished chan struct{}
}

// forgetEvery bounds how long a handled alert stays in the store; a crash in between
// only makes it handled again, which the dedup guard turns into a skip.
const forgetEvery = 50 * time.Millisecond

// NewIntake returns an intake writing to store and queueing into queue.
func NewIntake(store state.Store, queue *Queue, logger *zap.Logger) *Intake {
	in := &Intake{store: store, queue: queue, logger: logger, resolutions: map[string]time.Time{},
		pending: map[string]int{}, flush: make(chan struct{}, 1), stop: make(chan struct{}),
		finished: make(chan struct{})}
	in.seq.Store(uint64(time.Now().UnixNano()))
	go in.forget()
	return in
}

// Close forgets what was handled so far and stops.
func (in *Intake) Close() {
	close(in.stop)
	<-in.finished
}

// Accept implements the handler's Intake: room in the queue first, then one durable
// write of the notification as received (shared with concurrent notifications), then
// the queue.
func (in *Intake) Accept(body []byte, alerts []Alert) error {
	if err := in.queue.Reserve(len(alerts)); err != nil {
		return err
	}
	key := in.nextKey()
	value := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint64(value, uint64(alerts[0].ReceivedAt.UnixNano()))
	value = append(value, body...)
	if err := in.store.PutAll(context.Background(), intakeBucket, []state.Record{{Key: key, Value: value}}); err != nil {
		in.queue.Unreserve(len(alerts))
		return fmt.Errorf("storing the notification: %w", err)
	}
	in.track(key, alerts)
	in.noteResolutions(alerts)
	in.queue.Commit(alerts)
	return nil
}

// track marks alerts as coming from the stored notification key, which is forgotten
// once all of them are handled.
func (in *Intake) track(key string, alerts []Alert) {
	for i := range alerts {
		alerts[i].IntakeKey = key
	}
	in.doneMu.Lock()
	in.pending[key] += len(alerts)
	in.doneMu.Unlock()
}

// nextKey returns a key that sorts in arrival order, across restarts too.
func (in *Intake) nextKey() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], in.seq.Add(1))
	return hex.EncodeToString(b[:])
}

// Decoder turns a stored notification back into its alerts.
type Decoder func(body []byte, receivedAt time.Time) ([]Alert, error)

// Restore reads the notifications a previous process accepted but did not finish, and
// returns their alerts. A stored notification that no longer decodes is reported and
// skipped, never dropped silently: it stays in the store.
func Restore(ctx context.Context, store state.Store, decode Decoder, logger *zap.Logger) ([]Alert, error) {
	var out []Alert
	err := store.Scan(ctx, intakeBucket, func(key string, raw []byte) error {
		if len(raw) < 8 {
			logger.Error("a stored notification is too short to restore", zap.String("key", key))
			return nil
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(raw)))
		alerts, err := decode(raw[8:], at)
		if err != nil {
			logger.Error("a stored notification no longer decodes", zap.String("key", key), zap.Error(err))
			return nil
		}
		for i := range alerts {
			alerts[i].IntakeKey = key
		}
		out = append(out, alerts...)
		return nil
	})
	return out, err
}

// Requeue queues restored alerts. Make the queue large enough for them and new
// notifications together (NewQueue(size + len(restored))).
func (in *Intake) Requeue(alerts []Alert) error {
	in.doneMu.Lock()
	for i := range alerts {
		in.pending[alerts[i].IntakeKey]++
	}
	in.doneMu.Unlock()
	in.noteResolutions(alerts)
	return in.queue.Accept(alerts)
}

// Done forgets an alert whose runs have all finished. Alerts are forgotten in groups,
// one durable write for many.
func (in *Intake) Done(_ context.Context, a *Alert) {
	if a.IntakeKey == "" {
		return
	}
	in.doneMu.Lock()
	in.pending[a.IntakeKey]--
	if in.pending[a.IntakeKey] > 0 {
		// other alerts of the same notification are still to be handled
		in.doneMu.Unlock()
		return
	}
	delete(in.pending, a.IntakeKey)
	in.done = append(in.done, a.IntakeKey)
	full := len(in.done) >= 1024
	in.doneMu.Unlock()
	if full {
		select {
		case in.flush <- struct{}{}:
		default:
		}
	}
}

// forget deletes handled alerts from the store every forgetEvery, or sooner when many
// wait, until Close.
func (in *Intake) forget() {
	defer close(in.finished)
	t := time.NewTicker(forgetEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-in.flush:
		case <-in.stop:
			in.forgetNow()
			return
		}
		in.forgetNow()
	}
}

func (in *Intake) forgetNow() {
	in.doneMu.Lock()
	keys := in.done
	in.done = nil
	in.doneMu.Unlock()
	if len(keys) == 0 {
		return
	}
	if err := in.store.DeleteAll(context.Background(), intakeBucket, keys); err != nil {
		in.logger.Warn("forgetting handled alerts failed; they will be handled again after a restart",
			zap.Int("alerts", len(keys)), zap.Error(err))
	}
}

func (in *Intake) noteResolutions(alerts []Alert) {
	in.mu.Lock()
	defer in.mu.Unlock()

	now := time.Now()
	for i := range alerts {
		if alerts[i].Status == StatusResolved {
			in.resolutions[occurrence(&alerts[i])] = now
		}
	}
	for k, at := range in.resolutions {
		if now.Sub(at) > resolutionTTL {
			delete(in.resolutions, k)
		}
	}
}

// Resolved reports whether the occurrence of a has been resolved.
func (in *Intake) Resolved(a *Alert) bool {
	in.mu.Lock()
	defer in.mu.Unlock()

	_, ok := in.resolutions[occurrence(a)]
	return ok
}

// occurrence identifies one firing of an alert: its fingerprint and when it started.
func occurrence(a *Alert) string {
	return a.Fingerprint + "@" + a.StartsAt.UTC().Format(time.RFC3339Nano)
}
