package policies

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// The variables every condition can read besides the facts of earlier steps.
var (
	alertFields    = []string{"status", "fingerprint", "starts_at", "ends_at", "generator_url", "name"}
	instanceFields = []string{"raw", "parsed", "scheme", "host", "port", "path", "domain", "ip", "address"}
	reservedIDs    = []string{"labels", "annotations", "alert", "instance", "now"}
)

// stepFacts maps each earlier step's id to the facts its action declares.
type stepFacts map[string][]string

// newCELEnv declares the scope's variables, with each earlier step as a map.
func newCELEnv(earlier stepFacts) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.Variable("labels", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("annotations", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("alert", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("instance", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("now", cel.TimestampType),
	}
	for id := range earlier {
		opts = append(opts, cel.Variable(id, cel.MapType(cel.StringType, cel.DynType)))
	}
	return cel.NewEnv(opts...)
}

// compiled is a checked CEL expression and the steps it reads.
type compiled struct {
	program cel.Program
	deps    map[string]bool
}

// compileExpr checks src against the scope of a step whose earlier steps are earlier.
// want is the output type required, or nil for any.
func compileExpr(src string, earlier stepFacts, want *cel.Type) (*compiled, error) {
	env, err := newCELEnv(earlier)
	if err != nil {
		return nil, fmt.Errorf("declaring variables: %w", err)
	}
	checked, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s", oneLine(iss.Err().Error()))
	}
	if want != nil && !checked.OutputType().IsExactType(want) && !checked.OutputType().IsExactType(cel.DynType) {
		return nil, fmt.Errorf("must be a %s expression, not %s", want, checked.OutputType())
	}
	deps, err := checkReads(checked.NativeRep().Expr(), earlier)
	if err != nil {
		return nil, err
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, fmt.Errorf("planning: %w", err)
	}
	return &compiled{program: prg, deps: deps}, nil
}

// checkReads finds which earlier steps an expression reads, and refuses reads of facts
// that their actions do not declare, and of fields the alert and instance do not have.
func checkReads(e ast.Expr, earlier stepFacts) (map[string]bool, error) {
	deps := map[string]bool{}
	var bad error
	ast.PostOrderVisit(e, ast.NewExprVisitor(func(x ast.Expr) {
		if bad != nil {
			return
		}
		name, field, ok := readOf(x)
		if !ok {
			if x.Kind() == ast.IdentKind {
				if _, step := earlier[x.AsIdent()]; step {
					deps[x.AsIdent()] = true
				}
			}
			return
		}
		bad = checkRead(name, field, earlier, deps)
	}))
	return deps, bad
}

// readOf recognizes `var.field` and `var["field"]`.
func readOf(x ast.Expr) (name, field string, ok bool) {
	switch x.Kind() {
	case ast.SelectKind:
		sel := x.AsSelect()
		if sel.Operand().Kind() == ast.IdentKind {
			return sel.Operand().AsIdent(), sel.FieldName(), true
		}
	case ast.CallKind:
		call := x.AsCall()
		if call.FunctionName() == "_[_]" && len(call.Args()) == 2 &&
			call.Args()[0].Kind() == ast.IdentKind && call.Args()[1].Kind() == ast.LiteralKind {
			if s, isStr := call.Args()[1].AsLiteral().(types.String); isStr {
				return call.Args()[0].AsIdent(), string(s), true
			}
		}
	}
	return "", "", false
}

func checkRead(name, field string, earlier stepFacts, deps map[string]bool) error {
	switch name {
	case "alert":
		if !slices.Contains(alertFields, field) {
			return fmt.Errorf("alert has no field %q (it has %s)", field, strings.Join(alertFields, ", "))
		}
	case "instance":
		if !slices.Contains(instanceFields, field) {
			return fmt.Errorf("instance has no field %q (it has %s)", field, strings.Join(instanceFields, ", "))
		}
	default:
		facts, isStep := earlier[name]
		if !isStep {
			return nil
		}
		deps[name] = true
		if !slices.Contains(facts, field) {
			return fmt.Errorf("step %q has no fact %q (its facts: %s)", name, field, strings.Join(facts, ", "))
		}
	}
	return nil
}

// evalBool runs a condition.
func (c *compiled) evalBool(s *Scope) (bool, error) {
	v, err := c.eval(s)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition gave %T, not a bool", v)
	}
	return b, nil
}

// eval runs the expression and returns a Go value.
func (c *compiled) eval(s *Scope) (any, error) {
	out, _, err := c.program.Eval(s.celVars())
	if err != nil {
		return nil, err
	}
	return nativeValue(out)
}

// nativeValue turns a CEL value into the Go values facts and parameters use.
func nativeValue(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.String:
		return string(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return int64(x), nil
	case types.Double:
		return float64(x), nil
	case types.Bool:
		return bool(x), nil
	case types.Timestamp:
		return x.Time, nil
	case types.Duration:
		return x.Duration, nil
	case types.Null:
		return nil, nil
	case traits.Lister:
		return nativeList(x)
	case traits.Mapper:
		return nativeMap(x)
	}
	if v.Type() == types.ErrType {
		return nil, fmt.Errorf("%v", v)
	}
	native, err := v.ConvertToNative(reflect.TypeFor[any]())
	if err != nil {
		return nil, fmt.Errorf("converting %s: %w", v.Type().TypeName(), err)
	}
	return native, nil
}

func nativeList(l traits.Lister) (any, error) {
	var out []any
	for it := l.Iterator(); it.HasNext() == types.True; {
		e, err := nativeValue(it.Next())
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func nativeMap(m traits.Mapper) (any, error) {
	out := map[string]any{}
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("map key %v is not a string", k)
		}
		e, err := nativeValue(m.Get(k))
		if err != nil {
			return nil, err
		}
		out[string(ks)] = e
	}
	return out, nil
}

func oneLine(s string) string {
	lines := strings.Split(s, "\n")
	return strings.TrimPrefix(strings.TrimSpace(lines[0]), "ERROR: <input>:")
}

// sortedKeys returns a map's keys in order, for messages.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var _ = time.Time{}
