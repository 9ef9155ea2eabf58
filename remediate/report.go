package remediate

import (
	"time"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/remediate/actions"
)

// Decision is what became of a step.
type Decision string

// Decisions.
const (
	// DecisionExecuted: the action ran and returned facts.
	DecisionExecuted Decision = "executed"
	// DecisionPlanned: a mutating action was not run because the run is in dry-run; its
	// exact request is recorded.
	DecisionPlanned Decision = "planned"
	// DecisionSkipped: the step's condition was false, or it reads facts of a planned step.
	DecisionSkipped Decision = "skipped"
	// DecisionFailed: the condition, the parameters or the action failed.
	DecisionFailed Decision = "failed"
)

var decisions = []Decision{DecisionExecuted, DecisionPlanned, DecisionSkipped, DecisionFailed}

// Outcomes of a run.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	// OutcomeCancelled: the alert resolved and the run stopped before its next mutating step.
	OutcomeCancelled = "cancelled"
)

var outcomes = []string{OutcomeSucceeded, OutcomeFailed, OutcomeCancelled}

// AlertRef identifies the alert a run is for.
type AlertRef struct {
	Fingerprint string    `json:"fingerprint"`
	Alertname   string    `json:"alertname"`
	Instance    string    `json:"instance,omitempty"`
	Status      string    `json:"status"`
	StartsAt    time.Time `json:"starts_at"`
}

func refOf(a *Alert) AlertRef {
	return AlertRef{
		Fingerprint: a.Fingerprint, Alertname: a.Name(), Instance: a.Instance(),
		Status: a.Status, StartsAt: a.StartsAt,
	}
}

// StepReport is what happened to one step of a run.
type StepReport struct {
	ID       string   `json:"id"`
	Action   string   `json:"action"`
	Mutates  bool     `json:"mutates"`
	Decision Decision `json:"decision"`
	// Reason says why a step was skipped or planned, or what kind of failure it was.
	Reason    string           `json:"reason,omitempty"`
	Condition string           `json:"condition,omitempty"`
	Request   *actions.Request `json:"request,omitempty"`
	Facts     actions.Facts    `json:"facts,omitempty"`
	Error     string           `json:"error,omitempty"`
	Duration  time.Duration    `json:"duration_ns"`
}

// SilenceReport is what became of the silence a policy asked for while it runs.
type SilenceReport struct {
	Decision Decision `json:"decision"`
	ID       string   `json:"id,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// RunReport is one run of one policy for one alert.
type RunReport struct {
	ID       string         `json:"run_id"`
	Policy   string         `json:"policy"`
	Mode     config.Mode    `json:"mode"`
	Alert    AlertRef       `json:"alert"`
	Outcome  string         `json:"outcome"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Silence  *SilenceReport `json:"silence,omitempty"`
	// Skipped is the guard that would keep this run from starting, in a plan.
	Skipped    string       `json:"skipped,omitempty"`
	SkipReason string       `json:"skip_reason,omitempty"`
	Steps      []StepReport `json:"steps"`
}

// AlertPlan is what the policies would do for one alert.
type AlertPlan struct {
	Alert AlertRef     `json:"alert"`
	Runs  []*RunReport `json:"runs"`
}
