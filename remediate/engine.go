package remediate

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate/actions"
)

// Log keys used by the engine.
const (
	keyRunID       = "run_id"
	keyPolicy      = "policy"
	keyAlertname   = "alertname"
	keyInstance    = "instance"
	keyFingerprint = "fingerprint"
	keyStatus      = "status"
	keyStep        = "step"
	keyAction      = "action"
	keyMode        = "mode"
	keyDecision    = "decision"
	keyReason      = "reason"
	keyOutcome     = "outcome"
)

// Rules are what a reload swaps at once: the policies, the global mode, the actions
// they were checked against, and the Alertmanager silences go to.
type Rules struct {
	Policies     *policies.Set
	Mode         config.Mode
	Actions      actions.Registry
	Alertmanager *actions.Alertmanager
}

// Engine matches alerts to policies and runs their steps.
type Engine struct {
	rules   atomic.Pointer[Rules]
	metrics *engineMetrics
	logger  *zap.Logger
	now     func() time.Time
}

// NewEngine returns an engine running rules, with its metrics registered on reg.
func NewEngine(rules *Rules, reg prometheus.Registerer, logger *zap.Logger) *Engine {
	e := &Engine{metrics: newEngineMetrics(reg), logger: logger, now: time.Now}
	e.Reload(rules)
	return e
}

// Reload swaps the rules; runs under way finish with the rules they started with.
func (e *Engine) Reload(rules *Rules) {
	e.metrics.init(rules)
	e.rules.Store(rules)
}

// Rules returns the rules in force.
func (e *Engine) Rules() *Rules { return e.rules.Load() }

// Process runs every policy that matches a, one after another, in the mode in force.
func (e *Engine) Process(ctx context.Context, a Alert) {
	rules := e.rules.Load()
	for _, p := range e.match(rules, &a) {
		rep := e.run(ctx, rules, p, &a, p.EffectiveMode(rules.Mode))
		e.observe(rep)
	}
}

// Plan runs the policies matching each alert in dry-run, whatever the mode in force:
// read-only steps run for real, mutating steps are planned with their exact requests.
func (e *Engine) Plan(ctx context.Context, alerts []Alert) []*AlertPlan {
	rules := e.rules.Load()
	out := make([]*AlertPlan, 0, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		ap := &AlertPlan{Alert: refOf(a), Runs: []*RunReport{}}
		for _, p := range e.match(rules, a) {
			ap.Runs = append(ap.Runs, e.run(ctx, rules, p, a, config.ModeDryRun))
		}
		out = append(out, ap)
	}
	return out
}

func (e *Engine) match(rules *Rules, a *Alert) []*policies.Policy {
	matched := rules.Policies.Match(a.Labels, a.Status)
	if ce := e.logger.Check(zap.DebugLevel, "alert matched"); ce != nil {
		names := make([]string, len(matched))
		for i, p := range matched {
			names[i] = p.Name
		}
		ce.Write(zap.String(keyAlertname, a.Name()), zap.String(keyInstance, a.Instance()),
			zap.String(keyStatus, a.Status), zap.Strings("policies", names))
	}
	return matched
}

func (e *Engine) observe(rep *RunReport) {
	e.metrics.runs.WithLabelValues(rep.Policy, rep.Outcome).Inc()
	e.metrics.runSeconds.WithLabelValues(rep.Policy).Observe(rep.Finished.Sub(rep.Started).Seconds())
	for _, s := range rep.Steps {
		e.metrics.steps.WithLabelValues(s.Action, string(s.Decision), string(rep.Mode)).Inc()
	}
}

// runState is one run under way.
type runState struct {
	rules   *Rules
	policy  *policies.Policy
	alert   *Alert
	mode    config.Mode
	scope   *policies.Scope
	report  *RunReport
	planned map[string]bool
	logger  *zap.Logger
}

func (e *Engine) run(ctx context.Context, rules *Rules, p *policies.Policy, a *Alert, mode config.Mode) *RunReport {
	start := e.now()
	id := newRunID(start)
	rs := &runState{
		rules: rules, policy: p, alert: a, mode: mode,
		scope:   policies.NewScope(a.Alert, id, p.Name, start),
		report:  &RunReport{ID: id, Policy: p.Name, Mode: mode, Alert: refOf(a), Started: start, Steps: []StepReport{}},
		planned: map[string]bool{},
		logger: e.logger.With(zap.String(keyRunID, id), zap.String(keyPolicy, p.Name),
			zap.String(keyAlertname, a.Name()), zap.String(keyInstance, a.Instance()),
			zap.String(keyFingerprint, a.Fingerprint), zap.String(keyMode, string(mode))),
	}
	rs.logger.Info("run started", zap.String(keyStatus, a.Status))

	if p.SilenceWhileRunning {
		defer e.silence(ctx, rs)()
	}
	rs.report.Outcome = e.steps(ctx, rs)
	rs.report.Finished = e.now()

	rs.logger.Info("run finished", zap.String(keyOutcome, rs.report.Outcome),
		zap.Duration("duration", rs.report.Finished.Sub(start)))
	return rs.report
}

// steps runs the policy's steps in order and returns the run's outcome.
func (e *Engine) steps(ctx context.Context, rs *runState) string {
	for _, step := range rs.policy.Steps {
		sr := e.step(ctx, rs, step)
		rs.report.Steps = append(rs.report.Steps, sr)
		if sr.Decision == DecisionFailed && step.OnError != policies.OnErrorContinue {
			return OutcomeFailed
		}
	}
	return OutcomeSucceeded
}
