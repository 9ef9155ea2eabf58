package remediate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate/actions"
	"github.com/remediator/remediator/state"
)

// step runs one step: checks its dependencies and condition, renders its parameters,
// then runs its action, or plans it when it mutates outside live mode.
func (e *Engine) step(ctx context.Context, rs *runState, step *policies.Step) StepReport {
	start := e.now()
	sr := e.decide(ctx, rs, step)
	sr.Duration = e.now().Sub(start)
	recordFacts(rs, &sr)
	e.logStep(rs, &sr)
	return sr
}

// recordFacts makes a step's facts, and the implicit ok, error and decision, visible to
// later steps. A planned step has none: the steps reading it are skipped.
func recordFacts(rs *runState, sr *StepReport) {
	if sr.Decision == DecisionPlanned || rs.planned[sr.ID] {
		return
	}
	facts := make(actions.Facts, len(sr.Facts)+4)
	for k, v := range sr.Facts {
		facts[k] = v
	}
	facts["ok"] = sr.Decision == DecisionExecuted
	facts["error"] = sr.Error
	facts["decision"] = string(sr.Decision)
	facts["reason"] = sr.Reason
	rs.scope.SetFacts(sr.ID, facts)
}

func (e *Engine) decide(ctx context.Context, rs *runState, step *policies.Step) StepReport {
	sr := StepReport{ID: step.ID, Action: step.Action, Mutates: step.Mutates(), Condition: step.When}
	if dep := plannedDependency(rs, step); dep != "" {
		// its inputs do not exist in dry-run, so it cannot be evaluated
		rs.planned[step.ID] = true
		return skipped(sr, fmt.Sprintf("reads facts of step %q, which was only planned", dep))
	}
	ok, err := step.Condition(rs.scope)
	if err != nil {
		return failed(sr, actions.ReasonInvalid, fmt.Errorf("evaluating when: %w", err))
	}
	if !ok {
		return skipped(sr, "condition is false")
	}
	params, err := step.Params(rs.scope)
	if err != nil {
		return failed(sr, actions.ReasonInvalid, fmt.Errorf("rendering parameters: %w", err))
	}
	action := rs.rules.Actions[step.Action]
	env := actions.Env{Logger: rs.logger.Named("action." + step.Action), RunID: rs.report.ID,
		Policy: rs.policy.Name, Step: step.ID, Alert: rs.alert.Alert}
	req, err := action.Request(params, env)
	if err != nil {
		return failed(sr, reasonOf(err), fmt.Errorf("describing request: %w", err))
	}
	sr.Request = &req
	if !step.Mutates() {
		return e.execute(ctx, sr, action, params, env)
	}
	return e.mutate(ctx, rs, step, sr, action, params, env)
}

// mutate runs a mutating step behind its guards: resolution, a crash before, its budget,
// and dry-run. The call is journalled before it is made, so a crash during it is known.
func (e *Engine) mutate(ctx context.Context, rs *runState, step *policies.Step, sr StepReport,
	action actions.Action, params actions.Params, env actions.Env) StepReport {
	if rs.policy.Guards.OnResolved == policies.OnResolvedCancel && rs.alert.Status == StatusFiring &&
		e.intake != nil && e.intake.Resolved(rs.alert) {
		e.countSkip(rs, SkipResolved)
		return skipped(sr, reasonResolved)
	}
	if done, ok := rs.record.Done[step.ID]; ok {
		sr.Decision, sr.Facts, sr.Error, sr.Reason = done.Decision, done.Facts, done.Error, reasonDoneBefore
		return sr
	}
	if rs.unknown[step.ID] {
		return failed(sr, reasonOutcomeUnknown, errors.New("called before a restart, outcome never recorded"))
	}
	if skip, msg, err := e.spend(ctx, rs, step); err != nil || skip {
		if err != nil {
			return failed(sr, actions.ReasonUnavailable, fmt.Errorf("reserving budget: %w", err))
		}
		e.countSkip(rs, SkipBudget)
		return skipped(sr, msg)
	}
	if rs.mode != config.ModeLive {
		rs.planned[step.ID] = true
		sr.Decision, sr.Reason = DecisionPlanned, "dry-run"
		return sr
	}
	if err := e.journal(ctx, rs, step.ID, nil); err != nil {
		return failed(sr, actions.ReasonUnavailable, fmt.Errorf("journalling the call: %w", err))
	}
	sr = e.execute(ctx, sr, action, params, env)
	if ctx.Err() != nil {
		// interrupted: whether the call took effect is unknown, and stays so in the journal
		return sr
	}
	if err := e.journal(ctx, rs, step.ID, &sr); err != nil {
		rs.logger.Error("journalling an outcome failed", zap.String(keyStep, step.ID), zap.Error(err))
	}
	return sr
}

// execute calls the action once.
func (e *Engine) execute(ctx context.Context, sr StepReport, action actions.Action, params actions.Params,
	env actions.Env) StepReport {
	facts, err := action.Run(ctx, params, env)
	if err != nil {
		return failed(sr, reasonOf(err), err)
	}
	sr.Decision, sr.Facts = DecisionExecuted, facts
	return sr
}

// spend reserves the step's budget before the call (in dry-run it only looks), so that a
// crash after the call still counts it. It reports whether the step must be skipped.
func (e *Engine) spend(ctx context.Context, rs *runState, step *policies.Step) (bool, string, error) {
	b := step.Budget
	if b == nil {
		return false, "", nil
	}
	key, err := b.RenderKey(rs.scope)
	if err != nil {
		return false, "", err
	}
	var r state.Reservation
	if rs.mode == config.ModeLive {
		r, err = e.store.Reserve(ctx, "budget:"+key, rs.report.ID+"/"+step.ID, b.Max, b.Per.Std())
	} else {
		r, err = e.store.Uses(ctx, "budget:"+key, b.Per.Std())
		r.OK = r.Used < b.Max
	}
	if err != nil || r.OK {
		return false, "", err
	}
	msg := budgetMessage(key, r.Used, b.Max, b.Per.Std())
	if rs.mode != config.ModeLive {
		msg = "would be skipped: " + msg
	}
	return true, msg, nil
}

// journal records that a mutating step is being called (sr nil) or how it ended.
func (e *Engine) journal(ctx context.Context, rs *runState, id string, sr *StepReport) error {
	rec := rs.record
	if sr == nil {
		rec.InFlight = append(rec.InFlight, id)
		return e.saveRun(ctx, rec)
	}
	rec.InFlight = slices.DeleteFunc(rec.InFlight, func(s string) bool { return s == id })
	if rec.Done == nil {
		rec.Done = map[string]doneStep{}
	}
	rec.Done[id] = doneStep{Decision: sr.Decision, Facts: sr.Facts, Error: sr.Error}
	return e.saveRun(ctx, rec)
}

func plannedDependency(rs *runState, step *policies.Step) string {
	ids := make([]string, 0, len(rs.planned))
	for id := range rs.planned {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if step.DependsOn(id) {
			return id
		}
	}
	return ""
}

func skipped(sr StepReport, reason string) StepReport {
	sr.Decision, sr.Reason = DecisionSkipped, reason
	return sr
}

func failed(sr StepReport, reason string, err error) StepReport {
	sr.Decision, sr.Reason, sr.Error = DecisionFailed, reason, err.Error()
	return sr
}

func reasonOf(err error) string {
	var se *actions.StepError
	if errors.As(err, &se) {
		return se.Reason
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return actions.ReasonTimeout
	}
	return actions.ReasonFailed
}

func (e *Engine) logStep(rs *runState, sr *StepReport) {
	fields := []zap.Field{zap.String(keyStep, sr.ID), zap.String(keyAction, sr.Action),
		zap.String(keyDecision, string(sr.Decision)), zap.String(keyReason, sr.Reason)}
	switch {
	case sr.Decision == DecisionFailed:
		rs.logger.Warn("step failed", append(fields, zap.String("error", sr.Error))...)
	case sr.Mutates && sr.Decision == DecisionExecuted:
		rs.logger.Info("mutating step executed", fields...)
	case sr.Decision == DecisionPlanned:
		rs.logger.Info("mutating step planned", fields...)
	default:
		if ce := rs.logger.Check(zap.DebugLevel, "step done"); ce != nil {
			ce.Write(fields...)
		}
	}
}

func (e *Engine) countSkip(rs *runState, reason string) {
	if !rs.peek {
		e.metrics.skips.WithLabelValues(rs.policy.Name, reason).Inc()
	}
}
