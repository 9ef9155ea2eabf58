package remediate

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
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

// Intake makes accepted alerts durable before the webhook answers, then queues them. An
// alert stays in the store until every run it started has finished, so that a crash
// loses nothing: Restore queues what is left at start.
type Intake struct {
	store  state.Store
	queue  *Queue
	logger *zap.Logger
	seq    atomic.Uint64

	mu          sync.Mutex
	resolutions map[string]time.Time // occurrence → when its resolution arrived
}

// NewIntake returns an intake writing to store and queueing into queue.
func NewIntake(store state.Store, queue *Queue, logger *zap.Logger) *Intake {
	in := &Intake{store: store, queue: queue, logger: logger, resolutions: map[string]time.Time{}}
	in.seq.Store(uint64(time.Now().UnixNano()))
	return in
}

// Accept implements the handler's Intake: room in the queue first, then one durable
// write (shared with concurrent notifications), then the queue.
func (in *Intake) Accept(alerts []Alert) error {
	if err := in.queue.Reserve(len(alerts)); err != nil {
		return err
	}
	records := make([]state.Record, len(alerts))
	for i := range alerts {
		alerts[i].IntakeKey = in.nextKey()
		raw, err := json.Marshal(&alerts[i])
		if err != nil {
			in.queue.Unreserve(len(alerts))
			return fmt.Errorf("encoding alert: %w", err)
		}
		records[i] = state.Record{Key: alerts[i].IntakeKey, Value: raw}
	}
	if err := in.store.PutAll(context.Background(), intakeBucket, records); err != nil {
		in.queue.Unreserve(len(alerts))
		return fmt.Errorf("storing alerts: %w", err)
	}
	in.noteResolutions(alerts)
	in.queue.Commit(alerts)
	return nil
}

// nextKey returns a key that sorts in arrival order, across restarts too.
func (in *Intake) nextKey() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], in.seq.Add(1))
	return hex.EncodeToString(b[:])
}

// Restore reads the alerts a previous process accepted but did not finish.
func Restore(ctx context.Context, store state.Store) ([]Alert, error) {
	var out []Alert
	err := store.Scan(ctx, intakeBucket, func(key string, raw []byte) error {
		var a Alert
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decoding stored alert %s: %w", key, err)
		}
		a.IntakeKey = key
		out = append(out, a)
		return nil
	})
	return out, err
}

// Requeue queues restored alerts. Make the queue large enough for them and new
// notifications together (NewQueue(size + len(restored))).
func (in *Intake) Requeue(alerts []Alert) error {
	in.noteResolutions(alerts)
	return in.queue.Accept(alerts)
}

// Done forgets an alert whose runs have all finished.
func (in *Intake) Done(ctx context.Context, a *Alert) {
	if a.IntakeKey == "" {
		return
	}
	if err := in.store.Delete(context.WithoutCancel(ctx), intakeBucket, a.IntakeKey); err != nil {
		in.logger.Warn("forgetting a handled alert failed; it will be handled again after a restart",
			zap.String(keyFingerprint, a.Fingerprint), zap.Error(err))
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
