package remediate

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate/actions"
)

// Event is one decision, as the audit log records it.
type Event struct {
	RunID    string
	Policy   string
	Alert    AlertRef
	Step     string
	Action   string
	Mode     config.Mode
	Decision string // executed, planned, skipped, failed, escalated
	Reason   string
	Request  any
	Result   any
	Error    string
	Duration time.Duration
}

// Recorder keeps decisions durably: Record returns once the event is stored.
type Recorder interface {
	Record(ev Event) error
}

type nopRecorder struct{}

func (nopRecorder) Record(Event) error { return nil }

// Reasons the engine gives steps besides the actions' own.
const (
	reasonResolved       = "resolved"
	reasonOutcomeUnknown = "outcome_unknown"
	reasonDoneBefore     = "done before a restart"
)

// recordStep records a step's decision; an executed escalation is recorded as escalated.
func (e *Engine) recordStep(rs *runState, sr *StepReport) error {
	if rs.peek {
		// plans are previews: nothing of them goes to the audit log
		return nil
	}
	decision := string(sr.Decision)
	if sr.Decision == DecisionExecuted && sr.Action == "escalate" {
		decision = "escalated"
	}
	ev := Event{
		RunID: rs.report.ID, Policy: rs.policy.Name, Alert: rs.report.Alert, Step: sr.ID, Action: sr.Action,
		Mode: rs.mode, Decision: decision, Reason: sr.Reason, Error: sr.Error, Duration: sr.Duration,
	}
	if sr.Request != nil {
		ev.Request = sr.Request
	}
	if len(sr.Facts) > 0 {
		ev.Result = sr.Facts
	}
	return e.recorder.Record(ev)
}

// skipRun records a run the guards kept from starting. A flapping alert is escalated
// instead of fixed again.
func (e *Engine) skipRun(ctx context.Context, rules *Rules, p *policies.Policy, a *Alert, mode config.Mode,
	adm *admission) {
	e.metrics.skips.WithLabelValues(p.Name, adm.skip).Inc()
	e.logger.Info("run skipped", zap.String(keyPolicy, p.Name), zap.String(keyAlertname, a.Name()),
		zap.String(keyInstance, a.Instance()), zap.String(keyReason, adm.skip), zap.String("detail", adm.msg))
	err := e.recorder.Record(Event{Policy: p.Name, Alert: refOf(a), Mode: mode, Decision: "skipped",
		Reason: adm.skip + ": " + adm.msg})
	if err != nil {
		e.logger.Error("recording a skipped run failed", zap.Error(err))
	}
	if adm.skip == SkipFlapping {
		e.escalate(ctx, rules, p, a, mode, newRunID(e.now()), "anti_flap", adm.msg)
	}
}

// escalateUnknown escalates a mutating step whose earlier call may or may not have
// happened: repeating it blindly could do harm twice.
func (e *Engine) escalateUnknown(ctx context.Context, rs *runState, sr *StepReport) {
	e.escalate(ctx, rs.rules, rs.policy, rs.alert, rs.mode, rs.report.ID, "outcome_unknown",
		fmt.Sprintf("step %s (%s) was under way when remediator stopped; its outcome is unknown, "+
			"so it is not repeated", sr.ID, sr.Action))
}

// escalate posts an escalation outside a policy's steps, in live mode; in dry-run it is
// recorded as planned.
func (e *Engine) escalate(ctx context.Context, rules *Rules, p *policies.Policy, a *Alert, mode config.Mode,
	runID, step, reason string) {
	action, ok := rules.Actions["escalate"]
	if !ok {
		return
	}
	params := actions.Params{"reason": reason, "alertname": "RemediatorEscalation", "duration": 6 * time.Hour,
		"labels": map[string]any{"severity": "page"}}
	env := actions.Env{Logger: e.logger, RunID: runID, Policy: p.Name, Step: step, Alert: a.Alert}
	ev := Event{RunID: runID, Policy: p.Name, Alert: refOf(a), Step: step, Action: "escalate", Mode: mode,
		Decision: "planned", Reason: reason}
	if req, err := action.Request(params, env); err == nil {
		ev.Request = req
	}
	if mode == config.ModeLive {
		ev.Decision = "escalated"
		if _, err := action.Run(ctx, params, env); err != nil {
			ev.Decision, ev.Error = "failed", err.Error()
			e.logger.Error("escalating failed", zap.String(keyPolicy, p.Name), zap.Error(err))
		}
	}
	if err := e.recorder.Record(ev); err != nil {
		e.logger.Error("recording an escalation failed", zap.Error(err))
	}
}
