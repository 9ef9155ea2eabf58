package remediate

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/state"
)

// resolutionTTL is how long a resolution is remembered to cancel runs of its occurrence.
const resolutionTTL = 24 * time.Hour

// Intake makes accepted notifications durable before the webhook answers, then queues
// their alerts. A notification stays in the journal until every run its alerts started
// has finished, so that a crash loses nothing: Restore finds what is left at start.
type Intake struct {
	journal *state.Journal
	queue   *Queue
	logger  *zap.Logger
	seq     atomic.Uint64

	mu          sync.Mutex
	resolutions map[string]time.Time // occurrence → when its resolution arrived
	swept       time.Time            // when resolutions were last cleared of old ones
	pending     map[string]int       // stored notification → its alerts not yet handled
}

// sweepInterval is how often resolutions older than resolutionTTL are forgotten.
const sweepInterval = time.Minute

// NewIntake returns an intake writing to journal and queueing into queue.
func NewIntake(journal *state.Journal, queue *Queue, logger *zap.Logger) *Intake {
	in := &Intake{journal: journal, queue: queue, logger: logger,
		resolutions: map[string]time.Time{}, pending: map[string]int{}}
	in.seq.Store(uint64(time.Now().UnixNano()))
	return in
}

// Accept implements the handler's Intake: room in the queue first, then one durable
// write of the notification as received (sharing its fsync with concurrent ones), then
// the queue.
func (in *Intake) Accept(body []byte, alerts []Alert) error {
	if err := in.queue.Reserve(len(alerts)); err != nil {
		return err
	}
	key := in.nextKey()
	var at [8]byte
	binary.BigEndian.PutUint64(at[:], uint64(alerts[0].ReceivedAt.UnixNano()))
	if err := in.journal.Append(key, at[:], body); err != nil {
		in.queue.Unreserve(len(alerts))
		return fmt.Errorf("storing the notification: %w", err)
	}
	in.track(key, alerts)
	in.queue.Commit(alerts)
	return nil
}

// track marks alerts as coming from the stored notification key, which is forgotten
// once all of them are handled, and notes their resolutions.
func (in *Intake) track(key string, alerts []Alert) {
	in.mu.Lock()
	defer in.mu.Unlock()

	now := time.Now()
	for i := range alerts {
		alerts[i].IntakeKey = key
		in.pending[key]++
		if alerts[i].Status == StatusResolved {
			in.resolutions[occurrence(&alerts[i])] = now
		}
	}
	if now.Sub(in.swept) < sweepInterval {
		return
	}
	in.swept = now
	for k, at := range in.resolutions {
		if now.Sub(at) > resolutionTTL {
			delete(in.resolutions, k)
		}
	}
}

// nextKey returns a key that sorts in arrival order, across restarts too.
func (in *Intake) nextKey() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], in.seq.Add(1))
	return hex.EncodeToString(b[:])
}

// Decoder turns a stored notification back into its alerts.
type Decoder func(body []byte, receivedAt time.Time) ([]Alert, error)

// Restore turns the notifications a previous process accepted but did not finish back
// into alerts. One that no longer decodes is reported and left in the journal, never
// dropped silently.
func Restore(entries []state.JournalEntry, decode Decoder, logger *zap.Logger) []Alert {
	var out []Alert
	for _, e := range entries {
		if len(e.Value) < 8 {
			logger.Error("a stored notification is too short to restore", zap.String("key", e.Key))
			continue
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(e.Value)))
		alerts, err := decode(e.Value[8:], at)
		if err != nil {
			logger.Error("a stored notification no longer decodes", zap.String("key", e.Key), zap.Error(err))
			continue
		}
		for i := range alerts {
			alerts[i].IntakeKey = e.Key
		}
		out = append(out, alerts...)
	}
	return out
}

// Requeue queues restored alerts. Make the queue large enough for them and new
// notifications together (NewQueue(size + len(restored))).
func (in *Intake) Requeue(alerts []Alert) error {
	for i := 0; i < len(alerts); {
		j := i
		for j < len(alerts) && alerts[j].IntakeKey == alerts[i].IntakeKey {
			j++
		}
		in.track(alerts[i].IntakeKey, alerts[i:j])
		i = j
	}
	return in.queue.Accept(alerts)
}

// Done forgets an alert's notification once all its alerts are handled. The mark is
// not waited for: losing it in a crash only makes the alerts handled again, which the
// dedup guard turns into skips.
func (in *Intake) Done(a *Alert) {
	if a.IntakeKey == "" {
		return
	}
	in.mu.Lock()
	in.pending[a.IntakeKey]--
	last := in.pending[a.IntakeKey] <= 0
	if last {
		delete(in.pending, a.IntakeKey)
	}
	in.mu.Unlock()
	if !last {
		// other alerts of the same notification are still to be handled
		return
	}
	if err := in.journal.Done(a.IntakeKey); err != nil {
		in.logger.Warn("forgetting a handled notification failed; it will be handled again after a restart",
			zap.String("key", a.IntakeKey), zap.Error(err))
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
