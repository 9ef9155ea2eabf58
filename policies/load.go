package policies

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/prometheus/alertmanager/matcher/compat"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/internal/strictyaml"
	"github.com/remediator/remediator/remediate/actions"
)

// Set is the policies loaded from the configured files, in file order.
type Set struct {
	Policies []*Policy
	Files    []string
}

// Match returns the policies that act on an alert with these labels and status.
func (s *Set) Match(lset map[string]string, status string) []*Policy {
	var out []*Policy
	for _, p := range s.Policies {
		if p.Matches(lset, status) {
			out = append(out, p)
		}
	}
	return out
}

// Names returns the policies' names, for metrics.
func (s *Set) Names() []string {
	out := make([]string, len(s.Policies))
	for i, p := range s.Policies {
		out[i] = p.Name
	}
	return out
}

// Load reads every file the patterns name (paths or globs, relative to dir) and checks
// them against the registry. Every problem of every file is returned together.
func Load(patterns []string, dir string, reg actions.Registry) (*Set, error) {
	files, err := expand(patterns, dir)
	if err != nil {
		return nil, err
	}
	set := &Set{Files: files}
	var errs strictyaml.Errors
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, &strictyaml.Error{File: file, Msg: fmt.Sprintf("reading: %v", err)})
			continue
		}
		ps, err := Parse(file, data, reg)
		errs = appendErrors(errs, err)
		set.Policies = append(set.Policies, ps...)
	}
	errs = append(errs, uniqueNames(set.Policies)...)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

func expand(patterns []string, dir string) ([]string, error) {
	var files []string
	for _, pat := range patterns {
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(dir, pat)
		}
		matches, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("policy_files: %q: %w", pat, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("policy_files: %q matches no file", pat)
		}
		for _, m := range matches {
			if !slices.Contains(files, m) {
				files = append(files, m)
			}
		}
	}
	return files, nil
}

func appendErrors(errs strictyaml.Errors, err error) strictyaml.Errors {
	if err == nil {
		return errs
	}
	if more, ok := err.(strictyaml.Errors); ok {
		return append(errs, more...)
	}
	return append(errs, &strictyaml.Error{Msg: err.Error()})
}

func uniqueNames(ps []*Policy) strictyaml.Errors {
	var errs strictyaml.Errors
	seen := map[string]*Policy{}
	for _, p := range ps {
		if first, dup := seen[p.Name]; dup && p.Name != "" {
			errs = append(errs, &strictyaml.Error{File: p.File, Line: p.Line, Path: "name",
				Msg: fmt.Sprintf("policy %q is also defined at %s:%d", p.Name, first.File, first.Line)})
			continue
		}
		seen[p.Name] = p
	}
	return errs
}

// Parse decodes and checks one policy file.
func Parse(file string, data []byte, reg actions.Registry) ([]*Policy, error) {
	var f File
	pos, err := strictyaml.Decode(file, data, &f)
	if err != nil {
		return nil, err
	}
	c := &checker{pos: pos, reg: reg}
	for i, p := range f.Policies {
		if p == nil {
			c.add(fmt.Sprintf("policies[%d]", i), "empty policy")
			continue
		}
		c.policy(fmt.Sprintf("policies[%d]", i), p)
	}
	if err := c.errs.Err(); err != nil {
		return nil, err
	}
	return f.Policies, nil
}

// checker validates policies and compiles their conditions, templates and matchers,
// collecting every problem.
type checker struct {
	pos  *strictyaml.Positions
	reg  actions.Registry
	errs strictyaml.Errors
}

func (c *checker) add(path, format string, args ...any) {
	c.errs = append(c.errs, c.pos.Errorf(path, format, args...))
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	stepIDRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

func (c *checker) policy(path string, p *Policy) {
	p.File, p.Line = c.pos.File, c.pos.Line(path)
	switch {
	case p.Name == "":
		c.add(path+".name", "required")
	case !nameRE.MatchString(p.Name):
		c.add(path+".name", "%q must be lower case letters, digits, '-', '_' or '.', at most 63", p.Name)
	}
	c.matchers(path, p)
	c.statuses(path, p)
	applyDefaults(p)
	if p.Mode != "" && p.Mode != config.ModeDryRun && p.Mode != config.ModeLive {
		c.add(path+".mode", "must be %q or %q, not %q", config.ModeDryRun, config.ModeLive, p.Mode)
	}
	c.guards(path+".guards", &p.Guards)
	if len(p.Steps) == 0 {
		c.add(path+".steps", "required, at least one")
	}
	earlier := stepFacts{}
	for i, s := range p.Steps {
		spath := fmt.Sprintf("%s.steps[%d]", path, i)
		if s == nil {
			c.add(spath, "empty step")
			continue
		}
		c.step(spath, s, earlier)
		if s.ID != "" {
			earlier[s.ID] = factNames(s.spec)
		}
	}
}

func (c *checker) matchers(path string, p *Policy) {
	if len(p.Match) == 0 {
		c.add(path+".match", "required: a policy without matchers would act on every alert")
	}
	for i, m := range p.Match {
		ms, err := compat.Matchers(m, "policy")
		if err != nil {
			c.add(fmt.Sprintf("%s.match[%d]", path, i), "%v", err)
			continue
		}
		p.matchers = append(p.matchers, ms...)
	}
}

func (c *checker) statuses(path string, p *Policy) {
	for i, s := range p.Statuses {
		if s != "firing" && s != "resolved" {
			c.add(fmt.Sprintf("%s.statuses[%d]", path, i), "must be firing or resolved, not %q", s)
		}
	}
}

func (c *checker) guards(path string, g *Guards) {
	if g.MaxRuns != nil && (g.MaxRuns.Count < 1 || g.MaxRuns.Per <= 0) {
		c.add(path+".max_runs", "count must be at least 1 and per a positive duration")
	}
	if g.Breaker != nil && (g.Breaker.Failures < 1 || g.Breaker.OpenFor <= 0) {
		c.add(path+".breaker", "failures must be at least 1 and open_for a positive duration")
	}
	for name, d := range map[string]*config.Duration{"cooldown": g.Cooldown, "lease_ttl": g.LeaseTTL,
		"anti_flap": g.AntiFlap} {
		if d != nil && *d < 0 {
			c.add(path+"."+name, "must not be negative")
		}
	}
	if g.LeaseTTL != nil && *g.LeaseTTL == 0 {
		c.add(path+".lease_ttl", "must be positive")
	}
	switch g.OnResolved {
	case "", OnResolvedCancel, OnResolvedVerify, OnResolvedIgnore:
	default:
		c.add(path+".on_resolved", "must be cancel, verify or ignore, not %q", g.OnResolved)
	}
	t, err := parseTemplate(g.Target, stepFacts{})
	if err != nil {
		c.add(path+".target", "%v", err)
	}
	g.target = t
}

// Guard defaults, applied here and nowhere else.
const (
	defaultCooldown   = config.Duration(time.Hour)
	defaultLeaseTTL   = config.Duration(15 * time.Minute)
	defaultFailures   = 3
	defaultBreakerFor = config.Duration(time.Hour)
	defaultTarget     = "{{ .Labels.instance }}"
)

// applyDefaults fills what the policy left out.
func applyDefaults(p *Policy) {
	g := &p.Guards
	if g.Dedup == nil {
		yes := true
		g.Dedup = &yes
	}
	if g.Cooldown == nil {
		d := defaultCooldown
		g.Cooldown = &d
	}
	if g.LeaseTTL == nil {
		d := defaultLeaseTTL
		g.LeaseTTL = &d
	}
	if g.Breaker == nil {
		g.Breaker = &Breaker{Failures: defaultFailures, OpenFor: defaultBreakerFor}
	}
	if g.OnResolved == "" {
		g.OnResolved = OnResolvedCancel
	}
	if g.Target == "" {
		g.Target = defaultTarget
	}
	if len(p.Statuses) == 0 {
		p.Statuses = []string{"firing"}
	}
	if g.OnResolved == OnResolvedVerify && !slices.Contains(p.Statuses, "resolved") {
		p.Statuses = append(p.Statuses, "resolved")
	}
}

func (c *checker) step(path string, s *Step, earlier stepFacts) {
	s.Line = c.pos.Line(path)
	c.stepID(path, s, earlier)
	action, ok := c.reg[s.Action]
	switch {
	case s.Action == "":
		c.add(path+".action", "required")
		return
	case !ok:
		c.add(path+".action", "unknown action %q%s", s.Action, strictyaml.Suggest(s.Action, c.reg.Names()))
		return
	}
	s.spec = action.Spec()
	s.deps = map[string]bool{}
	c.params(path+".with", s, earlier)
	if s.When != "" {
		compiled, err := compileExpr(s.When, earlier, cel.BoolType)
		if err != nil {
			c.add(path+".when", "%v", err)
		} else {
			s.when = compiled.program
			mergeDeps(s.deps, compiled.deps)
		}
	}
	switch s.OnError {
	case "":
		s.OnError = OnErrorStop
	case OnErrorStop, OnErrorContinue:
	default:
		c.add(path+".on_error", "must be stop or continue, not %q", s.OnError)
	}
	c.budget(path+".budget", s.Budget, earlier)
}

func (c *checker) stepID(path string, s *Step, earlier stepFacts) {
	switch {
	case s.ID == "":
		c.add(path+".id", "required")
	case !stepIDRE.MatchString(s.ID):
		c.add(path+".id", "%q must be lower case letters, digits and '_', starting with a letter", s.ID)
	case slices.Contains(reservedIDs, s.ID):
		c.add(path+".id", "%q is reserved; conditions read it as the alert's %s", s.ID, s.ID)
	default:
		if _, dup := earlier[s.ID]; dup {
			c.add(path+".id", "%q is used by an earlier step", s.ID)
		}
	}
}

func (c *checker) params(path string, s *Step, earlier stepFacts) {
	s.params = map[string]*paramValue{}
	for _, name := range sortedKeys(s.With) {
		decl, ok := s.spec.Param(name)
		if !ok {
			c.add(path+"."+name, "unknown parameter %q of %s%s", name, s.Action,
				strictyaml.Suggest(name, paramNames(s.spec)))
			continue
		}
		pv, err := compileParam(s.With[name], decl.Type, earlier)
		if err != nil {
			c.add(path+"."+name, "%v", err)
			continue
		}
		s.params[name] = pv
		mergeDeps(s.deps, pv.deps())
	}
	for _, decl := range s.spec.Params {
		if _, given := s.With[decl.Name]; given {
			continue
		}
		switch {
		case decl.Required:
			c.add(path+"."+decl.Name, "required by %s", s.Action)
		case decl.Default != nil:
			s.params[decl.Name] = &paramValue{typ: decl.Type, literal: decl.Default}
		}
	}
}

func (c *checker) budget(path string, b *Budget, earlier stepFacts) {
	if b == nil {
		return
	}
	if b.Key == "" {
		c.add(path+".key", "required")
	} else if t, err := parseTemplate(b.Key, earlier); err != nil {
		c.add(path+".key", "%v", err)
	} else {
		b.key = t
	}
	if b.Max < 1 {
		c.add(path+".max", "must be at least 1, not %d", b.Max)
	}
	if b.Per <= 0 {
		c.add(path+".per", "required, a positive duration such as 168h")
	}
}

func mergeDeps(into, from map[string]bool) {
	for k := range from {
		into[k] = true
	}
}

// ImplicitFacts are the facts every step has besides its action's: ok (it executed),
// error (why it failed), decision (executed, skipped or failed) and reason (why it was
// skipped or failed: "condition is false", "budget letsencrypt:example.test 4/4 in 168h").
var ImplicitFacts = []string{"ok", "error", "decision", "reason"}

func factNames(s actions.Spec) []string {
	out := make([]string, 0, len(s.Facts)+len(ImplicitFacts))
	for _, f := range s.Facts {
		out = append(out, f.Name)
	}
	return append(out, ImplicitFacts...)
}

func paramNames(s actions.Spec) []string {
	out := make([]string, len(s.Params))
	for i, p := range s.Params {
		out[i] = p.Name
	}
	return out
}

// Condition evaluates the step's `when` in s; a step without one always runs.
func (s *Step) Condition(sc *Scope) (bool, error) {
	if s.when == nil {
		return true, nil
	}
	c := &compiled{program: s.when}
	return c.evalBool(sc)
}

// Params renders the step's parameters in s.
func (s *Step) Params(sc *Scope) (actions.Params, error) {
	out := make(actions.Params, len(s.params))
	for _, name := range sortedKeys(s.params) {
		v, err := s.params[name].value(sc)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// RenderKey renders the budget's key in s.
func (b *Budget) RenderKey(sc *Scope) (string, error) {
	k, err := b.key.render(sc)
	if err != nil {
		return "", fmt.Errorf("budget key: %w", err)
	}
	return strings.TrimSpace(k), nil
}

// RenderTarget renders what one run of the policy works on, for leases, cooldowns and
// run budgets.
func (p *Policy) RenderTarget(sc *Scope) (string, error) {
	t, err := p.Guards.target.render(sc)
	if err != nil {
		return "", fmt.Errorf("guards.target: %w", err)
	}
	return strings.TrimSpace(t), nil
}
