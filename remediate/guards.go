package remediate

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/state"
)

// Skip reasons: why a guard kept a run or a step from happening. They are the values of
// remediator_skips_total's reason label.
const (
	SkipPaused     = "paused"
	SkipResolved   = "resolved"
	SkipDuplicate  = "duplicate"
	SkipBreaker    = "breaker_open"
	SkipFlapping   = "flapping"
	SkipCooldown   = "cooldown"
	SkipRunBudget  = "run_budget"
	SkipTargetBusy = "target_busy"
	SkipBudget     = "budget"
	SkipNoTarget   = "no_target"
)

var skipReasons = []string{SkipPaused, SkipResolved, SkipDuplicate, SkipBreaker, SkipFlapping, SkipCooldown,
	SkipRunBudget, SkipTargetBusy, SkipBudget, SkipNoTarget}

// admission is the guards' answer for one policy and one alert.
type admission struct {
	skip   string // a skip reason, empty when admitted
	msg    string // what a person reads
	target string
	occKey string     // the dedup key of the alert occurrence
	record *runRecord // the run admitted: new, or resumed after a crash
	peek   bool       // a plan: nothing is written or counted
}

// guardCheck is one link of the admission chain: it returns a skip reason and message,
// or "" to pass the alert on.
type guardCheck func(ctx context.Context, g *guardCtx) (string, string, error)

type guardCtx struct {
	policy *policies.Policy
	alert  *Alert
	adm    *admission
	peek   bool // plan: read, write nothing
	now    time.Time
}

// admit runs the guards in order. With peek it only reads, for plans.
func (e *Engine) admit(ctx context.Context, p *policies.Policy, a *Alert, sc *policies.Scope,
	peek bool) (*admission, error) {
	adm := &admission{peek: peek}
	target, err := p.RenderTarget(sc)
	if err != nil || target == "" {
		adm.skip, adm.msg = SkipNoTarget, fmt.Sprintf("no target to guard: %v", err)
		return adm, nil
	}
	adm.target = target
	adm.occKey = p.Name + "|" + occurrence(a) + "|" + a.Status
	g := &guardCtx{policy: p, alert: a, adm: adm, peek: peek, now: e.now()}
	for _, check := range []guardCheck{e.checkPaused, e.checkResolved, e.checkDuplicate, e.checkBreaker,
		e.checkFlapping, e.checkCooldown} {
		if adm.record != nil {
			// a resumed run passed these checks before the crash
			break
		}
		reason, msg, err := check(ctx, g)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			adm.skip, adm.msg = reason, msg
			return adm, nil
		}
	}
	if peek {
		return adm, e.peekRunBudget(ctx, g)
	}
	return adm, e.claim(ctx, g)
}

func (e *Engine) checkPaused(ctx context.Context, g *guardCtx) (string, string, error) {
	for _, key := range []string{pauseAll, g.policy.Name} {
		_, paused, err := e.store.Get(ctx, pauseBucket, key)
		if err != nil {
			return "", "", err
		}
		if paused {
			return SkipPaused, pauseMessage(key), nil
		}
	}
	return "", "", nil
}

func pauseMessage(key string) string {
	if key == pauseAll {
		return "remediation is paused"
	}
	return "policy " + key + " is paused"
}

func (e *Engine) checkResolved(_ context.Context, g *guardCtx) (string, string, error) {
	if g.alert.Status != StatusFiring || g.policy.Guards.OnResolved != policies.OnResolvedCancel ||
		e.intake == nil || !e.intake.Resolved(g.alert) {
		return "", "", nil
	}
	return SkipResolved, "the alert resolved before its run started", nil
}

func (e *Engine) checkDuplicate(ctx context.Context, g *guardCtx) (string, string, error) {
	if !*g.policy.Guards.Dedup {
		return "", "", nil
	}
	raw, seen, err := e.store.Get(ctx, dedupBucket, g.adm.occKey)
	if err != nil || !seen {
		return "", "", err
	}
	rec, found, err := e.loadRun(ctx, string(raw))
	if err != nil {
		return "", "", err
	}
	if found && !rec.Finished && !g.peek && !e.isActive(rec.ID) {
		// the process running it died: resume it
		g.adm.record = rec
		return "", "", nil
	}
	if found && !rec.Finished {
		return SkipDuplicate, fmt.Sprintf("run %s is handling this alert occurrence", raw), nil
	}
	return SkipDuplicate, fmt.Sprintf("run %s already handled this alert occurrence", raw), nil
}

func (e *Engine) checkBreaker(ctx context.Context, g *guardCtx) (string, string, error) {
	b, err := e.loadBreaker(ctx, g.policy.Name)
	if err != nil {
		return "", "", err
	}
	if g.now.Before(b.OpenUntil) {
		return SkipBreaker, fmt.Sprintf("circuit breaker open after %d failed runs, until %s", b.Failures,
			b.OpenUntil.UTC().Format(time.RFC3339)), nil
	}
	if b.Failures < g.policy.Guards.Breaker.Failures || g.peek {
		return "", "", nil
	}
	// half-open: one trial run at a time
	ok, holder, err := e.store.AcquireLease(ctx, "breaker:"+g.policy.Name, "trial:"+g.adm.occKey,
		g.policy.Guards.LeaseTTL.Std())
	if err != nil || ok {
		return "", "", err
	}
	return SkipBreaker, "circuit breaker half-open; a trial run is under way (" + holder + ")", nil
}

func (e *Engine) checkFlapping(ctx context.Context, g *guardCtx) (string, string, error) {
	window := g.policy.Guards.AntiFlap
	if window == nil || *window == 0 || g.alert.Status != StatusFiring {
		return "", "", nil
	}
	raw, ok, err := e.store.Get(ctx, successBucket, g.policy.Name+"|"+g.adm.target)
	if err != nil || !ok {
		return "", "", err
	}
	if string(raw) == occurrence(g.alert) {
		return "", "", nil
	}
	return SkipFlapping, fmt.Sprintf("fired again within %s of a successful run for %s; not repeating the fix",
		window, g.adm.target), nil
}

func (e *Engine) checkCooldown(ctx context.Context, g *guardCtx) (string, string, error) {
	raw, ok, err := e.store.Get(ctx, cooldownBucket, g.policy.Name+"|"+g.adm.target)
	if err != nil || !ok {
		return "", "", err
	}
	return SkipCooldown, fmt.Sprintf("cooldown of %s for %s since the run that ended %s",
		g.policy.Guards.Cooldown, g.adm.target, raw), nil
}

func (e *Engine) peekRunBudget(ctx context.Context, g *guardCtx) error {
	mr := g.policy.Guards.MaxRuns
	if mr == nil {
		return nil
	}
	u, err := e.store.Uses(ctx, runBudgetKey(g), mr.Per.Std())
	if err == nil && u.Used >= mr.Count {
		g.adm.skip, g.adm.msg = SkipRunBudget, budgetMessage(runBudgetKey(g), u.Used, mr.Count, mr.Per.Std())
	}
	return err
}

func runBudgetKey(g *guardCtx) string { return "runs:" + g.policy.Name + ":" + g.adm.target }

// budgetMessage reads "budget letsencrypt:example.com 4/4 in 168h".
func budgetMessage(key string, used, max int, per time.Duration) string {
	return fmt.Sprintf("budget %s %d/%d in %s", key, used, max, shortDuration(per))
}

// shortDuration writes whole hours as "168h" and anything else as Go does.
func shortDuration(d time.Duration) string {
	if d > 0 && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// claim takes the target's lease, the run budget and the occurrence, and records the
// run, in that order; a step that fails gives back what was taken before it.
func (e *Engine) claim(ctx context.Context, g *guardCtx) error {
	rec := g.adm.record
	if rec == nil {
		rec = &runRecord{ID: newRunID(g.now), Policy: g.policy.Name, Target: g.adm.target, Started: g.now}
	}
	ok, holder, err := e.store.AcquireLease(ctx, "target:"+g.adm.target, e.leaseOwner(rec.ID),
		g.policy.Guards.LeaseTTL.Std())
	if err != nil {
		return err
	}
	if !ok {
		g.adm.skip, g.adm.msg = SkipTargetBusy, fmt.Sprintf("run %s holds %s", holder, g.adm.target)
		return nil
	}
	release := func() {
		_ = e.store.ReleaseLease(context.WithoutCancel(ctx), "target:"+g.adm.target, e.leaseOwner(rec.ID))
	}
	if g.adm.record == nil {
		if skip, err := e.claimNew(ctx, g, rec); err != nil || skip {
			release()
			return err
		}
	}
	rec.Attempt++
	g.adm.record = rec
	e.setActive(rec.ID, true)
	return e.saveRun(ctx, rec)
}

// claimNew reserves the run budget and the occurrence for a run that is not resumed.
func (e *Engine) claimNew(ctx context.Context, g *guardCtx, rec *runRecord) (bool, error) {
	if mr := g.policy.Guards.MaxRuns; mr != nil {
		r, err := e.store.Reserve(ctx, runBudgetKey(g), rec.ID, mr.Count, mr.Per.Std())
		if err != nil {
			return true, err
		}
		if !r.OK {
			g.adm.skip, g.adm.msg = SkipRunBudget, budgetMessage(runBudgetKey(g), r.Used, mr.Count, mr.Per.Std())
			return true, nil
		}
	}
	if !*g.policy.Guards.Dedup {
		return false, nil
	}
	wrote, err := e.store.PutIfAbsent(ctx, dedupBucket, state.Record{Key: g.adm.occKey, Value: []byte(rec.ID),
		TTL: dedupTTL})
	if err != nil {
		return true, err
	}
	if !wrote {
		g.adm.skip, g.adm.msg = SkipDuplicate, "another run claimed this alert occurrence"
		return true, nil
	}
	return false, nil
}

// settle records what a finished run means for the guards: the lease goes, the
// cooldown starts, the breaker counts, and a success is remembered for anti-flap.
func (e *Engine) settle(ctx context.Context, p *policies.Policy, a *Alert, adm *admission, rep *RunReport) {
	ctx = context.WithoutCancel(ctx)
	rec := adm.record
	rec.Finished, rec.Outcome = true, rep.Outcome
	if err := e.saveRun(ctx, rec); err != nil {
		e.logger.Error("recording the end of a run failed", zap.String(keyRunID, rec.ID), zap.Error(err))
	}
	if cd := p.Guards.Cooldown.Std(); cd > 0 {
		_ = e.store.Put(ctx, cooldownBucket, state.Record{Key: p.Name + "|" + adm.target,
			Value: []byte(rep.Finished.UTC().Format(time.RFC3339)), TTL: cd})
	}
	if rep.Outcome == OutcomeSucceeded && p.Guards.AntiFlap != nil && *p.Guards.AntiFlap > 0 {
		_ = e.store.Put(ctx, successBucket, state.Record{Key: p.Name + "|" + adm.target,
			Value: []byte(occurrence(a)), TTL: p.Guards.AntiFlap.Std()})
	}
	e.countBreaker(ctx, p, adm, rep.Outcome)
	_ = e.store.ReleaseLease(ctx, "target:"+adm.target, e.leaseOwner(rec.ID))
}

func (e *Engine) countBreaker(ctx context.Context, p *policies.Policy, adm *admission, outcome string) {
	e.breakerMu.Lock()
	defer e.breakerMu.Unlock()

	b, err := e.loadBreaker(ctx, p.Name)
	if err != nil {
		e.logger.Error("reading the circuit breaker failed", zap.String(keyPolicy, p.Name), zap.Error(err))
		return
	}
	switch outcome {
	case OutcomeSucceeded:
		b = breakerState{}
	case OutcomeFailed:
		b.Failures++
		if b.Failures >= p.Guards.Breaker.Failures {
			b.OpenUntil = e.now().Add(p.Guards.Breaker.OpenFor.Std())
			e.logger.Warn("circuit breaker opened", zap.String(keyPolicy, p.Name),
				zap.Time("open_until", b.OpenUntil))
		}
	default:
		return
	}
	if err := e.saveBreaker(ctx, p.Name, b); err != nil {
		e.logger.Error("recording the circuit breaker failed", zap.String(keyPolicy, p.Name), zap.Error(err))
	}
	_ = e.store.ReleaseLease(ctx, "breaker:"+p.Name, "trial:"+adm.occKey)
}

// pauseAll is the pause record that stops every policy.
const pauseAll = "*"

// Pause stops new runs of policy, or of every policy when policy is empty, until
// Resume. Runs under way go on. The pause survives restarts.
func (e *Engine) Pause(ctx context.Context, policy, by string) error {
	key := policy
	if key == "" {
		key = pauseAll
	}
	raw := []byte(e.now().UTC().Format(time.RFC3339) + " by " + by)
	return e.store.Put(ctx, pauseBucket, state.Record{Key: key, Value: raw})
}

// Resume lifts a pause set by Pause.
func (e *Engine) Resume(ctx context.Context, policy string) error {
	key := policy
	if key == "" {
		key = pauseAll
	}
	return e.store.Delete(ctx, pauseBucket, key)
}

// Paused lists the pauses in force: "*" for all, or policy names.
func (e *Engine) Paused(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	err := e.store.Scan(ctx, pauseBucket, func(k string, v []byte) error {
		out[k] = string(v)
		return nil
	})
	return out, err
}

// leaseOwner names this process and run as the holder of a lease. The process part
// survives restarts, so that a restarted process takes its own leases back at once.
func (e *Engine) leaseOwner(runID string) string { return e.instance + "/" + runID }

func (e *Engine) isActive(runID string) bool {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()

	return e.active[runID]
}

func (e *Engine) setActive(runID string, on bool) {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()

	if on {
		e.active[runID] = true
	} else {
		delete(e.active, runID)
	}
}

// instanceID returns this replica's id, kept in the store so that it survives restarts.
func instanceID(ctx context.Context, s state.Store, now time.Time) (string, error) {
	fresh := newRunID(now)
	if _, err := s.PutIfAbsent(ctx, metaBucket, state.Record{Key: "instance_id", Value: []byte(fresh)}); err != nil {
		return "", err
	}
	raw, _, err := s.Get(ctx, metaBucket, "instance_id")
	return string(raw), err
}

// renewLease keeps the target's lease while a run lasts longer than a third of its TTL,
// so that a long run (a Lambda given 300 s, a wait for a deployment) keeps its target;
// a crashed holder stops renewing and its lease expires. It returns the function that
// stops renewing.
func (e *Engine) renewLease(ctx context.Context, p *policies.Policy, adm *admission) func() {
	ttl := p.Guards.LeaseTTL.Std()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ok, holder, err := e.store.AcquireLease(ctx, "target:"+adm.target, e.leaseOwner(adm.record.ID), ttl)
			if err != nil || !ok {
				e.logger.Warn("renewing a run's lease failed", zap.String(keyRunID, adm.record.ID),
					zap.String("holder", holder), zap.Error(err))
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
