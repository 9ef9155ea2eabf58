package actions

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/alertmanager/template"
	"go.uber.org/zap"
)

// Type is the type of a parameter or a fact.
type Type int

// The types parameters and facts take. Go values: String string, Int int64, Bool bool,
// Duration time.Duration, Time time.Time, StringList []string, Object map[string]any,
// ObjectList []map[string]any.
const (
	String Type = iota
	Int
	Bool
	Duration
	Time
	StringList
	Object
	ObjectList
)

var typeNames = map[Type]string{
	String: "string", Int: "int", Bool: "bool", Duration: "duration", Time: "time",
	StringList: "list of strings", Object: "object", ObjectList: "list of objects",
}

// String names the type as error messages and docs do.
func (t Type) String() string { return typeNames[t] }

// Param declares one parameter an action takes.
type Param struct {
	Name     string
	Type     Type
	Required bool
	// Default is used when the step leaves the parameter out; nil for none.
	Default any
	Doc     string
}

// Fact declares one fact an action returns.
type Fact struct {
	Name string
	Type Type
	Doc  string
}

// Spec is what an action declares about itself.
type Spec struct {
	// Name is how policies call it: "tls.probe".
	Name string
	// Mutates is true when running it changes something outside remediator. Mutating
	// actions run only in live mode.
	Mutates bool
	Doc     string
	Params  []Param
	Facts   []Fact
	// IAM lists the AWS API actions it calls ("acm:DescribeCertificate").
	IAM []string
}

// Param returns the declared parameter called name.
func (s *Spec) Param(name string) (Param, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Request is the exact request an action would send: what dry-run plans show and the
// audit log records. Input carries no secrets.
type Request struct {
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Input     any    `json:"input"`
}

// Params are a step's parameters, rendered and converted to their declared types, with
// defaults applied.
type Params map[string]any

// Facts are what an action found or did, keyed by the declared fact names.
type Facts map[string]any

// Env is what a running action may know about its run.
type Env struct {
	Logger *zap.Logger
	RunID  string
	Policy string
	Step   string
	Alert  template.Alert
}

// Action is one thing a policy step can do.
type Action interface {
	Spec() Spec
	// Request describes the request Run would send with p.
	Request(p Params, env Env) (Request, error)
	// Run does it and returns its facts.
	Run(ctx context.Context, p Params, env Env) (Facts, error)
}

// Registry maps action names to actions.
type Registry map[string]Action

// NewRegistry returns a registry of the given actions.
func NewRegistry(as ...Action) Registry {
	r := Registry{}
	for _, a := range as {
		r[a.Spec().Name] = a
	}
	return r
}

// Names returns the registered names, sorted.
func (r Registry) Names() []string {
	out := make([]string, 0, len(r))
	for n := range r {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// String returns the string parameter name, or "".
func (p Params) String(name string) string {
	s, _ := p[name].(string)
	return s
}

// Int returns the int parameter name, or 0.
func (p Params) Int(name string) int64 {
	i, _ := p[name].(int64)
	return i
}

// Bool returns the bool parameter name, or false.
func (p Params) Bool(name string) bool {
	b, _ := p[name].(bool)
	return b
}

// Duration returns the duration parameter name, or 0.
func (p Params) Duration(name string) time.Duration {
	d, _ := p[name].(time.Duration)
	return d
}

// Time returns the time parameter name, or the zero time.
func (p Params) Time(name string) time.Time {
	t, _ := p[name].(time.Time)
	return t
}

// Strings returns the list parameter name, or nil.
func (p Params) Strings(name string) []string {
	s, _ := p[name].([]string)
	return s
}

// Objects returns the list-of-objects parameter name, or nil.
func (p Params) Objects(name string) []map[string]any {
	o, _ := p[name].([]map[string]any)
	return o
}

// StepError is a failure of a step with a bounded reason that metrics count.
type StepError struct {
	Reason string // throttled, denied, not_found, invalid, unavailable, timeout, failed
	Err    error
}

func (e *StepError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *StepError) Unwrap() error { return e.Err }

// Bounded reasons of StepError.
const (
	ReasonThrottled   = "throttled"
	ReasonDenied      = "denied"
	ReasonNotFound    = "not_found"
	ReasonInvalid     = "invalid"
	ReasonUnavailable = "unavailable"
	ReasonTimeout     = "timeout"
	ReasonFailed      = "failed"
)

// Invalid makes a StepError for a parameter or a value that cannot work.
func Invalid(format string, args ...any) error {
	return &StepError{Reason: ReasonInvalid, Err: fmt.Errorf(format, args...)}
}
