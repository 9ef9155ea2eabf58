package policies

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/remediator/remediator/remediate/actions"
)

// paramValue is one parameter of a step: a literal converted at load, a template
// rendered at run time, or a CEL expression evaluated at run time.
type paramValue struct {
	typ      actions.Type
	literal  any
	template *textTemplate
	expr     *compiled
}

// exprRE recognizes a parameter written as a CEL expression: "${ live.dns_names }".
var exprRE = regexp.MustCompile(`^\$\{(.+)\}$`)

// compileParam prepares a raw YAML value for a parameter of type typ.
func compileParam(raw any, typ actions.Type, earlier stepFacts) (*paramValue, error) {
	pv := &paramValue{typ: typ}
	s, isString := raw.(string)
	switch {
	case isString && exprRE.MatchString(strings.TrimSpace(s)):
		src := exprRE.FindStringSubmatch(strings.TrimSpace(s))[1]
		c, err := compileExpr(src, earlier, nil)
		if err != nil {
			return nil, err
		}
		pv.expr = c
	case isString && strings.Contains(s, "{{"):
		t, err := parseTemplate(s, earlier)
		if err != nil {
			return nil, err
		}
		pv.template = t
	default:
		v, err := convert(raw, typ)
		if err != nil {
			return nil, err
		}
		pv.literal = v
	}
	return pv, nil
}

func (pv *paramValue) deps() map[string]bool {
	switch {
	case pv.expr != nil:
		return pv.expr.deps
	case pv.template != nil:
		return pv.template.deps
	}
	return nil
}

// value produces the parameter's value in scope s.
func (pv *paramValue) value(s *Scope) (any, error) {
	switch {
	case pv.expr != nil:
		v, err := pv.expr.eval(s)
		if err != nil {
			return nil, err
		}
		return convert(v, pv.typ)
	case pv.template != nil:
		out, err := pv.template.render(s)
		if err != nil {
			return nil, err
		}
		return convert(out, pv.typ)
	}
	return pv.literal, nil
}

// convert turns a YAML, template or CEL value into the Go type of typ.
func convert(v any, typ actions.Type) (any, error) {
	switch typ {
	case actions.String:
		return toString(v)
	case actions.Int:
		return toInt(v)
	case actions.Bool:
		return toBool(v)
	case actions.Duration:
		return toDuration(v)
	case actions.Time:
		return toTime(v)
	case actions.StringList:
		return toStrings(v)
	case actions.Object:
		return toObject(v)
	case actions.ObjectList:
		return toObjects(v)
	}
	return nil, fmt.Errorf("unknown parameter type %d", typ)
}

func toString(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int, int64, float64, bool:
		return fmt.Sprint(x), nil
	}
	return nil, fmt.Errorf("want a string, got %s", describe(v))
}

func toInt(v any) (any, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return i, nil
		}
	}
	return nil, fmt.Errorf("want a whole number, got %s", describe(v))
}

func toBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("want true or false, got %s", describe(v))
}

func toDuration(v any) (any, error) {
	switch x := v.(type) {
	case time.Duration:
		return x, nil
	case string:
		if d, err := model.ParseDuration(strings.TrimSpace(x)); err == nil {
			return time.Duration(d), nil
		}
	}
	return nil, fmt.Errorf("want a duration such as 30s or 5m, got %s", describe(v))
}

func toTime(v any) (any, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(x)); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("want an RFC 3339 time, got %s", describe(v))
}

func toStrings(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []string:
		return x, nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("item %d: want a string, got %s", i, describe(e))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of strings, got %s", describe(v))
}

func toObject(v any) (any, error) {
	if m, ok := v.(map[string]any); ok {
		return m, nil
	}
	return nil, fmt.Errorf("want a mapping, got %s", describe(v))
}

func toObjects(v any) (any, error) {
	switch x := v.(type) {
	case []map[string]any:
		return x, nil
	case []any:
		out := make([]map[string]any, len(x))
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("item %d: want a mapping, got %s", i, describe(e))
			}
			out[i] = m
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of mappings, got %s", describe(v))
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(x)
	case []any, []string, []map[string]any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%v", x)
	}
}
