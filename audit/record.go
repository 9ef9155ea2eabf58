package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// SchemaVersion is the version of the record schema this package writes, the v of every
// record. It changes only when a field is removed or renamed or its type or meaning
// changes; fields added later are optional and readers must ignore those they do not know.
const SchemaVersion = 1

// knownVersions are the schema versions Verify accepts.
var knownVersions = map[int]bool{SchemaVersion: true}

// maxLineSize bounds one record's line, for writers and readers alike, so that a damaged
// file without newlines cannot make a reader hold all of it.
const maxLineSize = 4 << 20

// ZeroHash is the prev of the first record of a log: 64 zeros.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Decision is what a record says happened.
type Decision string

// Decisions. Consumers should treat a decision they do not know as opaque: new ones may
// be added without a new schema version.
const (
	// DecisionReceived: a notification's alert was accepted by the webhook.
	DecisionReceived Decision = "received"
	// DecisionRejected: a notification was refused; reason says why.
	DecisionRejected Decision = "rejected"
	// DecisionExecuted: a step's action ran; result holds what it returned.
	DecisionExecuted Decision = "executed"
	// DecisionPlanned: a mutating step was not run because the run is in dry-run; request
	// holds what it would have sent.
	DecisionPlanned Decision = "planned"
	// DecisionSkipped: a step or a run was not started; reason says which guard or condition.
	DecisionSkipped Decision = "skipped"
	// DecisionFailed: a step's condition, parameters or action failed; error says how.
	DecisionFailed Decision = "failed"
	// DecisionEscalated: the remediator handed the alert to people instead of acting.
	DecisionEscalated Decision = "escalated"
	// DecisionRecovered: the log itself set aside a line torn by a crash; reason and
	// result say where the bytes went.
	DecisionRecovered Decision = "recovered"
)

var decisions = map[Decision]bool{
	DecisionReceived: true, DecisionRejected: true, DecisionExecuted: true, DecisionPlanned: true,
	DecisionSkipped: true, DecisionFailed: true, DecisionEscalated: true, DecisionRecovered: true,
}

// Alert identifies the alert a record is about, in Alertmanager's terms.
type Alert struct {
	Fingerprint string `json:"fingerprint"`
	Alertname   string `json:"alertname"`
	Instance    string `json:"instance,omitempty"`
	Status      string `json:"status"`
}

// Record is one line of the audit log. Callers fill everything but V, Time, Seq and
// Prev, which Append sets. Request and Result may hold any value encoding/json accepts;
// Append writes them redacted (see Redact).
type Record struct {
	V        int       `json:"v"`
	Time     time.Time `json:"time"`
	Seq      uint64    `json:"seq"`
	Prev     string    `json:"prev"`
	RunID    string    `json:"run_id,omitempty"`
	Policy   string    `json:"policy,omitempty"`
	Alert    *Alert    `json:"alert,omitempty"`
	Step     string    `json:"step,omitempty"`
	Action   string    `json:"action,omitempty"`
	Mode     string    `json:"mode,omitempty"`
	Decision Decision  `json:"decision"`
	Reason   string    `json:"reason,omitempty"`
	Request  any       `json:"request,omitempty"`
	Result   any       `json:"result,omitempty"`
	Error    string    `json:"error,omitempty"`
	// DurationMS is how long the step or call took, in milliseconds; Millis converts.
	DurationMS float64 `json:"duration_ms,omitempty"`
}

// Millis returns d in the fractional milliseconds of Record.DurationMS.
func Millis(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}

// encodeBody checks r and encodes it, redacted, without the fields Append sets, so that
// the work under the log's lock is only the header and the hash.
func encodeBody(r *Record) ([]byte, error) {
	if !decisions[r.Decision] {
		return nil, fmt.Errorf("encoding audit record: unknown decision %q", r.Decision)
	}
	out, err := appendBody(make([]byte, 0, 512), r)
	if err != nil {
		return nil, fmt.Errorf("encoding audit record: %w", err)
	}
	return out, nil
}

// appendLine appends to dst the full line of a record: the header Append sets, then
// the encoded body, then a newline.
func appendLine(dst []byte, t time.Time, seq uint64, prev string, body []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, SchemaVersion, 10)
	dst = append(dst, `,"time":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prev":"`...)
	dst = append(dst, prev...)
	dst = append(dst, '"')
	if len(body) > 2 {
		dst = append(dst, ',')
		dst = append(dst, body[1:]...)
	} else {
		dst = append(dst, '}')
	}
	return append(dst, '\n')
}

// Hash returns the hex SHA-256 of line, given without its newline: the prev of the
// record that follows it.
func Hash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}
