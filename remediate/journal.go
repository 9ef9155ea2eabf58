package remediate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/remediate/actions"
	"github.com/remediator/remediator/state"
)

// Buckets of the state store the engine uses.
const (
	runsBucket     = "runs"
	dedupBucket    = "dedup"
	cooldownBucket = "cooldown"
	successBucket  = "last_success"
	breakerBucket  = "breaker"
	pauseBucket    = "pause"
	metaBucket     = "meta"
)

// finishedRunTTL is how long a finished run's record is kept; dedupTTL how long an
// alert occurrence is remembered.
const (
	finishedRunTTL = 7 * 24 * time.Hour
	dedupTTL       = 7 * 24 * time.Hour
)

// runRecord is a run's progress in the store: enough to resume it after a crash without
// repeating a mutating step blindly.
type runRecord struct {
	ID       string      `json:"id"`
	Policy   string      `json:"policy"`
	Mode     config.Mode `json:"mode"`
	Target   string      `json:"target"`
	Attempt  int         `json:"attempt"`
	Finished bool        `json:"finished"`
	Outcome  string      `json:"outcome,omitempty"`
	Started  time.Time   `json:"started"`
	// InFlight are the mutating steps called whose outcome was not recorded.
	InFlight []string `json:"in_flight,omitempty"`
	// Done are the mutating steps whose outcome was recorded, with their facts.
	Done map[string]doneStep `json:"done,omitempty"`
}

// doneStep is a mutating step that finished before a crash.
type doneStep struct {
	Decision Decision      `json:"decision"`
	Facts    actions.Facts `json:"facts,omitempty"`
	Error    string        `json:"error,omitempty"`
}

func (e *Engine) saveRun(ctx context.Context, rec *runRecord) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding run %s: %w", rec.ID, err)
	}
	var ttl time.Duration
	if rec.Finished {
		ttl = finishedRunTTL
	}
	return e.store.Put(context.WithoutCancel(ctx), runsBucket, state.Record{Key: rec.ID, Value: raw, TTL: ttl})
}

func (e *Engine) loadRun(ctx context.Context, id string) (*runRecord, bool, error) {
	raw, ok, err := e.store.Get(ctx, runsBucket, id)
	if err != nil || !ok {
		return nil, false, err
	}
	var rec runRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, false, fmt.Errorf("decoding run %s: %w", id, err)
	}
	return &rec, true, nil
}

// breakerState is a policy's circuit breaker.
type breakerState struct {
	Failures  int       `json:"failures"`
	OpenUntil time.Time `json:"open_until,omitzero"`
}

func (e *Engine) loadBreaker(ctx context.Context, policy string) (breakerState, error) {
	var b breakerState
	raw, ok, err := e.store.Get(ctx, breakerBucket, policy)
	if err != nil || !ok {
		return b, err
	}
	err = json.Unmarshal(raw, &b)
	return b, err
}

func (e *Engine) saveBreaker(ctx context.Context, policy string, b breakerState) error {
	raw, _ := json.Marshal(b)
	return e.store.Put(context.WithoutCancel(ctx), breakerBucket, state.Record{Key: policy, Value: raw})
}
